"""What the drift monitor does for live accuracy: a labelling sheet of the new traffic, the verdict on the model in use
(the live stage, through DVC), published as an artifact; "worse live" raises the alarm a confirmed drift raises."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.training import run_stage
from pipeline.data.datasets import dataset_spec
from pipeline.live.params import LiveParams
from pipeline.live.sampling import unsampled_chunks
from pipeline.live.sheets import write_live_sheet
from pipeline.live.statistics import WORSE
from pipeline.params import load_params, read_section

LIVE_STAGE = "live"
LIVE_SUMMARY = Path("reports") / "live" / "summary.json"


@task(cache_policy=NO_CACHE)
def sample_traffic(workspace: str, captures: str) -> str | None:
    """A live labelling sheet of the traffic no sheet has sampled yet (pipeline/live/sampling.py); its folder."""
    root = Path(workspace)
    params = load_params(LiveParams, root / "params.yaml")
    sheets = root / params.sheets_folder
    chunks = unsampled_chunks(Path(captures), sheets)
    if not chunks:
        return None
    class_names = dataset_spec(read_section("ingest", root / "params.yaml")["dataset"]).class_names
    written = write_live_sheet(chunks, params, class_names, sheets)
    if written.folder is None:
        get_run_logger().info("live accuracy: nothing new to label (each day's bounds are reached)")
        return None
    groups = ", ".join(f"{count} {group}" for group, count in written.groups.items())
    get_run_logger().info(
        "live accuracy: %d pictures to label (%s): fill in %s, then `fashion-live label %s`",
        sum(written.groups.values()),
        groups,
        written.folder / "labels.csv",
        written.folder,
    )
    return str(written.folder)


def judge_live(workspace: str) -> dict:
    """The live stage (it reruns only when the labels or the model changed) and its verdict."""
    run_stage(LIVE_STAGE, workspace)
    summary = json.loads((Path(workspace) / LIVE_SUMMARY).read_text())
    log = get_run_logger().warning if summary["verdict"] == WORSE else get_run_logger().info
    log("live accuracy: %s: %s", summary["verdict"], summary["reason"])
    return summary


def live_markdown(summary: dict, page: Path, decision: str) -> str:
    headline = "**Worse live**" if summary["verdict"] == WORSE else summary["verdict"].capitalize()
    return "\n".join(
        [
            f"{headline}: {summary['reason']}.",
            "",
            f"**Then**: {decision}.",
            "",
            f"Model in use `{summary['version_in_use']}`; test accuracy {summary['test_accuracy']:.2%}, floor "
            f"{summary['floor']:.2%}; labels of the last {summary['window_days']} days: {summary['labels']} "
            f"({summary['still_needed']} more needed for a verdict of 'as tested').",
            "",
            f"[Live accuracy page]({page.as_uri()})",
        ]
    )


@task(cache_policy=NO_CACHE)
def publish_live(workspace: str, summary: dict, decision: str) -> None:
    page = Path(workspace) / LIVE_SUMMARY.parent / "index.html"
    create_markdown_artifact(
        key="live-accuracy",
        markdown=live_markdown(summary, page, decision),
        description="How right the model in use is on labelled live traffic, against its test accuracy.",
    )
