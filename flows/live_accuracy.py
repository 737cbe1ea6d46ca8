"""What the drift monitor does for live accuracy: a labelling sheet of the new traffic, the verdict on the model in use
(the live stage, through DVC), published as an artifact; "worse live" raises the alarm a confirmed drift raises."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.artifacts import LIVE_PAGE, LIVE_SUMMARY
from flows.dvc_stages import StageFailed
from flows.training import run_stage
from pipeline.data.datasets import dataset_spec
from pipeline.live.params import LiveParams
from pipeline.live.sheets import sheet_of_new_traffic
from pipeline.live.statistics import WORSE
from pipeline.params import load_params, read_section

LIVE_STAGE = "live"


@task(cache_policy=NO_CACHE)
def sample_traffic(workspace: str, captures: str) -> str | None:
    """A live labelling sheet of the closed days' traffic no sheet has sampled yet (pipeline/live/sampling.py); its
    folder."""
    root = Path(workspace)
    params = load_params(LiveParams, root / "params.yaml")
    class_names = dataset_spec(read_section("ingest", root / "params.yaml")["dataset"]).class_names
    new = sheet_of_new_traffic(Path(captures), root / params.sheets_folder, params, class_names, include_today=False)
    for chunk in new.unreadable:
        get_run_logger().warning("live accuracy: left out %s: not a readable chunk of traffic", chunk)
    if new.sheet is None:
        return None
    if new.sheet.folder is None:
        get_run_logger().info("live accuracy: nothing new to label (each day's bounds are reached)")
        return None
    get_run_logger().info(
        "live accuracy: %s: fill it in, then `fashion-live label %s`", new.sheet.described(), new.sheet.folder
    )
    return str(new.sheet.folder)


def judge_live(workspace: str) -> dict | None:
    """The live stage (it reruns only when the labels or the model changed) and its verdict; None when the stage
    failed, said in one line: the drift check's own steps go on."""
    try:
        run_stage(LIVE_STAGE, workspace)
    except StageFailed as error:
        get_run_logger().warning("live accuracy: no verdict: %s", error)
        return None
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
            f"{summary['floor']:.2%}; random-sample labels of the last {summary['window_days']} days: "
            f"{summary['labels']}, {summary['needed']} needed to tell a drop of live.detect_drop.",
            "",
            f"[Live accuracy page]({page.as_uri()})",
        ]
    )


def live_next_step(live: dict, retrain: bool, unseen: list[str]) -> str:
    """What the monitor does after the live verdict, in words."""
    if live["verdict"] != WORSE:
        return "nothing: the model is not shown to be worse live"
    if retrain and unseen:
        return (
            f"worse live: retraining on {len(unseen)} accepted batch(es) the model has not seen "
            f"({', '.join(unseen)}), through the promotion gate"
        )
    if not retrain:
        return "worse live, but retraining is off"
    return (
        "worse live, and no accepted data the model has not seen: label the live sheets and offer them to the pool "
        "(`fashion-live label <sheet> --accept`); the next run retrains on them through the promotion gate"
    )


@task(cache_policy=NO_CACHE)
def publish_live(workspace: str, summary: dict, decision: str) -> None:
    page = Path(workspace) / LIVE_PAGE
    create_markdown_artifact(
        key="live-accuracy",
        markdown=live_markdown(summary, page, decision),
        description="How right the model in use is on labelled live traffic, against its test accuracy.",
    )
