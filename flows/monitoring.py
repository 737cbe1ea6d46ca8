"""The drift monitor as a Prefect flow: check a batch against the reference, publish the verdict, judge the model on
its labelled live traffic, retrain on drift or worse live.

By default it checks the traffic the prediction service kept since the monitor's last check (serve.capture_folder,
pipeline/serving/captures.py). Run once with `python -m flows.monitoring`, or `--batch <folder, .npz, .npy or IDX
file>` for a batch of your own; served daily by flows.serve.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.artifacts import DRIFT_CHECKS, DRIFT_HISTORY, MODEL, POOL, PREPARED_POOL_RECORD
from flows.command_line import add_workspace_options, one_line_failures, run_flow_command
from flows.drift_artifact import publish_drift
from flows.dvc_stages import run_streaming
from flows.live_accuracy import judge_live, live_next_step, publish_live, sample_traffic
from flows.notices import drift_confirmed
from flows.promotion import refused_batches
from flows.sharing import commit_records, share_results
from flows.training import run_stage, training_pipeline
from flows.workspace import DEFAULT_WAIT_MINUTES, WORKSPACE, claimed_workspace
from pipeline.accept.labelling import SHEET
from pipeline.data.pool import unseen_batches
from pipeline.drift.history import drifted_in_a_row, poolable, read_history
from pipeline.drift.page import add_decision
from pipeline.drift.params import DriftParams
from pipeline.drift.sources import UNKNOWN_SOURCE
from pipeline.live.statistics import WORSE
from pipeline.params import load_params, read_section
from pipeline.serving.captures import mark_checked, readable, record_checked, unchecked_chunks
from pipeline.serving.params import ServeParams

# Every check of the monitor keeps its own folder here (not a DVC output, so no stage run replaces it).
DRIFT_STAGE = "drift"
INDEX_STAGE = "report_index"
# Rebuilt only when the model changed: the features of the reference split the checks compare with.
REFERENCE_STAGE = "drift_reference"


# Options of the DVC stage's command that write its outputs: a check of the monitor writes only its own folder.
STAGE_OUTPUT_OPTIONS = ("--page", "--report", "--summary", "--metrics")


def check_command(workspace: Path, batches: list[Path], check_id: str, options: list[str]) -> list[str]:
    """The drift stage's own command as dvc.yaml has it, on `batches`, into check folder `check_id` only."""
    from dvc.repo import Repo

    with Repo(str(workspace)) as repo:
        # DVC resolves a target's dvc.yaml from the current directory: name the workspace's own, wherever the flow
        # was started.
        [stage] = repo.stage.collect(f"{Path(workspace).resolve() / 'dvc.yaml'}:{DRIFT_STAGE}")
        stage_command = shlex.split(stage.cmd)
    command, skip = [], 0
    for part in stage_command:
        if skip:
            skip -= 1
        elif part in STAGE_OUTPUT_OPTIONS:
            skip = 1
        elif part == "--current":
            skip = 1
            command += ["--current", *map(str, batches)]
        else:
            command.append(part)
    command += ["--check-id", check_id, "--source", "monitor", *options]
    return [sys.executable if command[0] == "python" else command[0], *command[1:]]


@task(cache_policy=NO_CACHE)
def check_batch(workspace: str, batches: list[str], check_id: str, options: list[str]) -> dict:
    """Run one drift check of the monitor (of a batch, or of several pooled) into its folder; returns its summary."""
    root = Path(workspace)
    command = check_command(root, [Path(batch) for batch in batches], check_id, options)
    run_streaming(command, root, DRIFT_STAGE, str(flow_run.id), get_run_logger().info)
    return json.loads((root / DRIFT_CHECKS / check_id / "summary.json").read_text())


def dataset_name(root: Path) -> str:
    return read_section("ingest", root / "params.yaml")["dataset"]


def shift_options(scenario: str | None, strength: float | None) -> list[str]:
    options = [] if scenario is None else ["--scenario", scenario]
    return options if strength is None else [*options, "--strength", str(strength)]


def pool_small_batches(root: Path, params: DriftParams, summary: dict, source_options: list[str]) -> dict:
    """After an inconclusive check: the recent inconclusive checks' images pooled into one check, once they are
    enough; otherwise the inconclusive summary as it is."""
    members = poolable(read_history(root / DRIFT_CHECKS), datetime.now(UTC), params.window_days)
    pooled_images = sum(member["images"] for member in members)
    get_run_logger().info(
        "inconclusive: %d image(s) pooled from %d check(s) in the last %d days, %d needed",
        pooled_images,
        len(members),
        params.window_days,
        params.min_batch,
    )
    if pooled_images < params.min_batch:
        return summary
    batches = [str(root / DRIFT_CHECKS / member["batch_file"]) for member in members]
    check_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.name}-pooled"
    pooled = ["--pooled", *(member["id"] for member in members)]
    return check_batch(str(root), batches, check_id, [*source_options, *pooled])


def unseen_accepted_batches(root: Path) -> list[str]:
    """Accepted batches the model has not seen, nor a refused candidate before it: new data to retrain on."""
    refused = refused_batches(root)
    return [batch for batch in unseen_batches(root / POOL, root / PREPARED_POOL_RECORD) if batch not in refused]


def next_step(summary: dict, params: DriftParams, in_a_row: int, retrain: bool, unseen: list[str]) -> str:
    """What the monitor does after the check, in words: the page, the index and the artifact say it."""
    if summary["verdict"] == "inconclusive":
        return (
            f"waiting for more images: a verdict needs drift.min_batch ({params.min_batch}); these are pooled with "
            f"the other inconclusive checks' images of drift.window_days ({params.window_days})"
        )
    if summary["verdict"] == "no drift":
        return "nothing: no drift"
    if in_a_row < params.retrain_after:
        return f"waiting for another drifted check: {in_a_row} of drift.retrain_after ({params.retrain_after}) in a row"
    if retrain and unseen:
        return (
            f"drift confirmed ({in_a_row} drifted checks in a row): retraining on {len(unseen)} accepted batch(es) "
            f"the model has not seen ({', '.join(unseen)}), through the promotion gate"
        )
    why = "no accepted data the model has not seen" if retrain else "retraining is off"
    return f"drift confirmed ({in_a_row} drifted checks in a row), but {why}: wrote a labelling sheet of the batch"


def retrain_on(root: Path, summary: dict, unseen: list[str], update_from_team: bool) -> None:
    """Confirmed drift with new accepted data: the training pipeline, through the promotion gate."""
    get_run_logger().info(
        "retraining on %d accepted batch(es) the model has not seen: %s",
        len(unseen),
        ", ".join(unseen),
    )
    # A subflow, so the retraining shows under this run in the UI. It takes the team's training turn and then the
    # workspace slot, which this run has let go of: the same order as every training, so no two runs deadlock.
    retraining = training_pipeline(workspace=str(root), update_from_team=update_from_team, return_state=True)
    summary["retraining_flow_run_id"] = str(retraining.state_details.flow_run_id)
    retraining.result()  # a failed retraining fails the monitor run too


def label_instead(root: Path, check: Path, traffic: Path | None) -> str:
    """Confirmed drift and nothing new to learn from: a labelling sheet of the drifted batch, and how to use it."""
    sheet = write_labelling_sheet(str(root), str(check), str(traffic) if traffic else None)
    get_run_logger().info(
        "not retraining. Label the drifted batch: fill in the label column of %s, copy its folder to "
        "data/incoming/<batch name>/ and run `fashion-accept data/incoming/<batch name> --no-crop --invert never` "
        "(its images are converted already)",
        sheet,
    )
    return str(sheet)


def new_traffic(captures: Path, checks: Path) -> list[Path]:
    """The chunks of traffic no check has read yet; a damaged one is left out, said in one line each run."""
    chunks = []
    for chunk in unchecked_chunks(captures, checks):
        if readable(chunk):
            chunks.append(chunk)
        else:
            get_run_logger().warning("left out %s: not a readable chunk of traffic (damaged, or copied in half)", chunk)
    return chunks


def traffic_folder(root: Path, traffic: str | None) -> Path:
    return Path(traffic).resolve() if traffic else root / load_params(ServeParams, root / "params.yaml").capture_folder


def check_for_drift(
    root: Path,
    params: DriftParams,
    batch: str | None,
    chunks: list[Path],
    captures: Path | None,
    retrain: bool,
    scenario: str | None,
    strength: float | None,
    source: str | None,
) -> tuple[dict, list[str]]:
    """One check of `batch` or of the new traffic `chunks`, pooled when inconclusive, and what follows it: its summary
    (with `confirmed`: drift confirmed) and the accepted batches the model has not seen, when confirmed."""
    run_stage(REFERENCE_STAGE, str(root))
    batches = [str(Path(batch).resolve())] if batch else [str(chunk) for chunk in chunks]
    check_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.name}"
    source_option = ["--current-source", source or UNKNOWN_SOURCE]
    options = [*source_option, *shift_options(scenario, strength)]
    if chunks:
        get_run_logger().info("checking %d chunk(s) of traffic from %s", len(chunks), captures)
        mark_checked(root / DRIFT_CHECKS, check_id, chunks)  # counted once the check is written
        options.append("--converted")  # the service converted its pictures: read as the model saw them
    summary = check_batch(str(root), batches, check_id, options)
    if chunks:
        record_checked(captures, check_id, chunks)  # for a monitor on another machine reading the same folder
    if summary["verdict"] == "inconclusive":
        summary = pool_small_batches(root, params, summary, source_option)
    in_a_row = drifted_in_a_row(read_history(root / DRIFT_CHECKS), datetime.now(UTC), params.window_days)
    summary["drifted_in_a_row"] = in_a_row
    summary["retraining_flow_run_id"] = summary["labelling_sheet"] = None
    check = root / DRIFT_CHECKS / summary["check"]["id"]
    summary["confirmed"] = confirmed = summary["dataset_drift"] and in_a_row >= params.retrain_after
    unseen = unseen_accepted_batches(root) if confirmed else []
    if confirmed and not (retrain and unseen):
        summary["labelling_sheet"] = label_instead(root, check, captures)
    summary["decision"] = next_step(summary, params, in_a_row, retrain, unseen)
    get_run_logger().info("then: %s", summary["decision"])
    add_decision(check, summary["decision"], summary["labelling_sheet"])
    publish_drift(check, in_a_row, params.retrain_after)
    if confirmed:
        drift_confirmed(summary, check)
    return summary, unseen


@task(cache_policy=NO_CACHE)
def write_labelling_sheet(workspace: str, check: str, traffic: str | None) -> Path:
    """The drifted check's images as a folder to label, least confident first (pipeline/accept/labelling.py), with
    the service's thumbnail of each captured picture (`traffic`: the capture folder, for a check of traffic)."""
    root, out = Path(workspace), Path(check) / "labelling"
    command = [sys.executable, "-m", "pipeline.commands.labelling_sheet", "--model", str(root / MODEL)]
    command += ["--images", str(Path(check) / "batch.npz"), "--out", str(out), "--dataset", dataset_name(root)]
    command += ["--traffic", traffic] if traffic else []
    run_streaming(command, root, "labelling_sheet", str(flow_run.id), get_run_logger().info)
    return out / SHEET


@flow(name="drift-monitor")
@one_line_failures("drift-monitor")
def drift_monitor(
    batch: str | None = None,
    scenario: str | None = None,
    strength: float | None = None,
    retrain_on_drift: bool | None = None,
    source: str | None = None,
    traffic: str | None = None,
    workspace: str = str(WORKSPACE),
    wait_minutes: float = DEFAULT_WAIT_MINUTES,
    update_from_team: bool = False,
) -> dict:
    """Check `batch` for drift, by default the prediction service's traffic since the last check, and judge the
    model in use on its labelled live traffic; on confirmed drift, or worse live, retrain.

    Without `batch`, the chunks of traffic under `traffic` (default: params.yaml's serve.capture_folder) that no
    check has read yet are checked together; with none, the run says so in one line and succeeds.

    `scenario`/`strength` simulate a shift of the batch. Each check writes its drift page, report and summary into
    a folder of its own, reports/drift/checks/<time>-<flow run name>/, which nothing rewrites: not the DVC drift
    stage (it checks params.yaml's batch) nor a retraining this check starts. A batch under drift.min_batch images
    is inconclusive; its images are pooled with the other inconclusive checks of the last drift.window_days days
    into one check once they are enough. The training pipeline starts only after drift.retrain_after drifted
    checks in a row (independent batches) and when `retrain_on_drift` (default: params.yaml's) allows it.
    `source` names where the batch comes from when it is known ('original' or an accepted source): it is then judged
    against that source's reference alone; by default (traffic) against the mix of known sources it looks like.

    Then, for live accuracy (flows/live_accuracy.py): a labelling sheet of the new traffic, and the live stage's
    verdict, also with no new traffic (labels come back on their own schedule). "Worse live" is followed as a
    confirmed drift is: retraining on accepted data the model has not seen, else a request for labels. A
    retraining waits for the team's training turn (flows/training_turn.py), with `update_from_team` as the training
    pipeline has it; a check itself needs no turn, so it may run beside another machine's training.
    """
    root = Path(workspace).resolve()
    with claimed_workspace(root, f"flow run '{flow_run.name}'", wait_minutes, get_run_logger().info):
        params = load_params(DriftParams, root / "params.yaml")
        retrain = params.retrain_on_drift if retrain_on_drift is None else retrain_on_drift
        captures = None if batch else traffic_folder(root, traffic)
        chunks = [] if batch else new_traffic(captures, root / DRIFT_CHECKS)
        if batch or chunks:
            summary, unseen = check_for_drift(
                root, params, batch, chunks, captures, retrain, scenario, strength, source
            )
        else:
            get_run_logger().info("no traffic since the last check: no new chunk in %s", captures)
            summary, unseen = {"verdict": "no traffic", "traffic": str(captures), "confirmed": False}, []
        if captures is not None:
            summary["live_sheet"] = sample_traffic(str(root), str(captures))
        live = judge_live(str(root))
        worse_live = live is not None and live["verdict"] == WORSE
        if worse_live and not summary["confirmed"]:  # a confirmed drift has looked for new data already
            unseen = unseen_accepted_batches(root)
        summary["live"] = live and {**live, "decision": live_next_step(live, retrain, unseen)}
        if live is not None:
            publish_live(str(root), live, summary["live"]["decision"])
        run_stage(INDEX_STAGE, str(root))  # the index shows the latest check, what followed it, and the verdicts
        message = f"Drift monitor: {summary['verdict']} ({flow_run.name})"
        commit_records(str(root), [str(DRIFT_HISTORY)], message, with_lock=True)
        share_results(str(root))  # before any retraining, which shares what it changes itself
    if (summary["confirmed"] or worse_live) and retrain and unseen:
        retrain_on(root, summary, unseen, update_from_team)
    summary["flow_run_id"] = str(flow_run.id)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.monitoring", description=drift_monitor.__doc__)
    parser.add_argument("--batch", help="the batch to check (default: the service's traffic since the last check)")
    parser.add_argument("--traffic", help="the service's capture folder (default: params.yaml's serve.capture_folder)")
    parser.add_argument("--scenario", help="simulate a shift of the batch: brightness, contrast, noise, ...")
    parser.add_argument("--strength", type=float, help="the shift's strength (default: the scenario's)")
    parser.add_argument("--no-retrain", action="store_true", help="never start the training pipeline")
    parser.add_argument("--source", help="the batch's source, when known: 'original' or an accepted source")
    add_workspace_options(parser)
    arguments = parser.parse_args(argv)
    run_flow_command(
        "drift-monitor",
        arguments.workspace,
        arguments.wait_minutes,
        lambda: drift_monitor(
            batch=arguments.batch,
            scenario=arguments.scenario,
            strength=arguments.strength,
            retrain_on_drift=False if arguments.no_retrain else None,
            source=arguments.source,
            traffic=arguments.traffic,
            workspace=arguments.workspace,
            wait_minutes=arguments.wait_minutes,
        ),
    )


if __name__ == "__main__":
    main()
