"""The training flow for real: Prefect's test server, DVC, the real data, a model that trains in seconds."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.dvc_stages import pipeline_stages
from flows.monitoring import drift_monitor
from flows.promotion import drop_refused_experiments
from flows.training import training_pipeline
from tests.support.workspaces import commit_params

pytestmark = pytest.mark.slow


# The workspace's own params train a fast model in one epoch; a run with overrides trains it for two.
OVERRIDES = {"train.epochs": 2}
# What a run with overrides must leave byte-identical in the workspace.
WORKSPACE_FILES = (
    "params.yaml",
    "dvc.lock",
    "models/model.keras",
    "reports/evaluate/metrics.json",
    "reports/evaluate/report.html",
    "reports/index.html",
)
MODEL_FILES = WORKSPACE_FILES[:1] + WORKSPACE_FILES[2:5]  # all but dvc.lock and the index


# The fast model's accuracy moves by a few points with its data; a gate this wide still refuses a model that learnt
# nothing. The gate's arithmetic at the default margins: tests/unit/test_promotion.py.
GATE = {"promote.max_test_drop": 30.0, "promote.max_source_drop": 30.0}


@pytest.fixture(scope="module")
def workspace(copy_of_small_workspace):
    return commit_params(copy_of_small_workspace("flow"), GATE)


def run_flow(workspace, overrides):
    """The flow's final state and the flow run it belongs to, as the Prefect API has them."""
    state = training_pipeline(overrides=overrides, workspace=str(workspace), return_state=True)
    return state, read_flow_run(state)


def read_flow_run(state):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def snapshot(workspace) -> dict[str, bytes]:
    return {name: (workspace / name).read_bytes() for name in WORKSPACE_FILES}


def worktrees(workspace) -> list[str]:
    return subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout.count("worktree ")


@pytest.fixture(scope="module")
def first_run(small_workspace, workspace):
    """The first run of the workspace this module copies (tests/flows/conftest.py): its state and flow run."""
    return small_workspace.state, small_workspace.flow_run


def test_first_run_runs_every_stage_in_dvc_order(first_run, workspace):
    state, _ = first_run
    assert state.is_completed(), state.message
    stage_runs = state.result()
    assert [run.stage for run in stage_runs] == pipeline_stages(workspace)
    assert all(run.ran for run in stage_runs)
    assert (workspace / "models" / "model.keras").is_file()


@pytest.fixture(scope="module")
def override_run(first_run, workspace):
    before = snapshot(workspace)
    state, flow_run = run_flow(workspace, OVERRIDES)
    return state, flow_run, before


def test_a_run_with_overrides_leaves_the_workspace_as_it_was(override_run, workspace):
    state, _, before = override_run
    assert state.is_completed(), state.message
    assert [run.ran for run in state.result()][:3] == [False] * 3  # data stages reused from the shared cache
    assert snapshot(workspace) == before
    assert worktrees(workspace) == 1  # the run's own workspace is gone


def test_a_run_with_overrides_is_an_experiment_with_its_own_reports(override_run, workspace):
    _, flow_run, _ = override_run
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=workspace, capture_output=True, text=True
    ).stdout.split()
    [experiment_ref] = [ref for ref in refs if ref.endswith(f"/{flow_run.name}")]

    def recorded(name: str) -> dict:
        shown = subprocess.run(
            ["git", "show", f"{experiment_ref}:{name}"], cwd=workspace, capture_output=True, text=True
        )
        return yaml.safe_load(shown.stdout)

    assert recorded("params.yaml")["train"]["epochs"] == 2
    assert recorded("dvc.lock")["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 2
    assert yaml.safe_load((workspace / "params.yaml").read_text())["train"]["epochs"] == 1
    kept = workspace / "reports" / "runs" / flow_run.name
    assert str(flow_run.id) in (kept / "evaluate" / "report.html").read_text()
    # The artifacts read the run's own metrics and link its own reports.
    artifacts = read_artifacts(flow_run.id)
    rows = artifacts["evaluation-metrics"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    accuracy = next(row for row in rows if row["scope"] == "overall" and row["metric"] == "accuracy")
    assert accuracy["value"] == round(json.loads((kept / "evaluate" / "metrics.json").read_text())["accuracy"], 4)
    summary = artifacts["training-run-summary"].data
    assert (kept / "evaluate" / "report.html").resolve().as_uri() in summary
    assert f"python -m flows.apply_experiment {flow_run.name}" in summary


def test_reports_carry_the_flow_run_id(first_run, workspace):
    _, flow_run = first_run
    assert str(flow_run.id) in (workspace / "reports" / "evaluate" / "report.html").read_text()
    assert str(flow_run.id) in (workspace / "reports" / "evaluate" / "model_card.html").read_text()
    # The index shows it for each report of the run.
    assert (workspace / "reports" / "index.html").read_text().count(str(flow_run.id)) == 5


def read_artifacts(flow_run_id) -> dict:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {artifact.key: artifact for artifact in artifacts}


def test_run_publishes_metrics_table_and_report_links(first_run, workspace, small_workspace):
    _, flow_run = first_run
    artifacts = read_artifacts(flow_run.id)
    rows = artifacts["evaluation-metrics"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    metrics = json.loads((workspace / "reports" / "evaluate" / "metrics.json").read_text())
    per_class = json.loads((workspace / "reports" / "evaluate" / "per_class.json").read_text())
    accuracy = next(row for row in rows if row["scope"] == "overall" and row["metric"] == "accuracy")
    assert accuracy["value"] == round(metrics["accuracy"], 4)
    assert {row["scope"] for row in rows} == {"overall", *per_class}
    summary = artifacts["training-run-summary"].data
    ran_in = small_workspace.root  # the workspace the first run ran in, of which this module's is a copy
    assert (ran_in / "reports" / "evaluate" / "report.html").resolve().as_uri() in summary
    assert (ran_in / "reports" / "index.html").resolve().as_uri() in summary
    assert "first evaluation" in summary


def test_second_run_finds_every_stage_up_to_date(first_run, workspace):
    state, flow_run = run_flow(workspace, None)
    assert state.is_completed(), state.message
    assert [run.ran for run in state.result()] == [False] * len(pipeline_stages(workspace))
    assert "No metric changed" in read_artifacts(flow_run.id)["training-run-summary"].data


def test_failing_stage_fails_the_flow_with_its_one_line_as_the_state_message(first_run, workspace):
    before = snapshot(workspace)
    overrides = {**OVERRIDES, "validate.expected_rows.test": 5000}
    state = training_pipeline(overrides=overrides, workspace=str(workspace), return_state=True)
    # What `prefect deployment run --watch`, the UI and `prefect flow-run inspect` show: the reason, in one line.
    assert state.is_failed()
    assert re.match(r"^training-pipeline: error: validate: .*expect_table_row_count_to_equal", state.message)
    assert "\n" not in state.message
    assert snapshot(workspace) == before
    assert worktrees(workspace) == 1


def test_unknown_override_fails_before_any_stage_runs(prefect_backend, workspace):
    lock_before = (workspace / "dvc.lock").read_text()
    with pytest.raises(Exception, match="cannot override train.epoch: no such key"):
        training_pipeline(overrides={"train.epoch": 3}, workspace=str(workspace))
    assert (workspace / "dvc.lock").read_text() == lock_before
    assert worktrees(workspace) == 1


def checks_dir(workspace) -> Path:
    return workspace.resolve() / "reports" / "drift" / "checks"


def held_out_batch(workspace) -> str:
    """A batch for the monitor (whose default, the prediction service's traffic, is tested in test_served_traffic)."""
    return str(workspace / "data" / "prepared" / "test.npz")


def test_monitor_on_confirmed_drift_without_new_data_writes_a_labelling_sheet(first_run, workspace):
    before = snapshot(workspace)
    clean = drift_monitor(batch=held_out_batch(workspace), workspace=str(workspace))
    assert clean["verdict"] == "no drift" and clean["retraining_flow_run_id"] is None
    first = drift_monitor(batch=held_out_batch(workspace), scenario="inversion", workspace=str(workspace))
    # One drifted batch is not enough: a clean batch is called drifted at rate alpha.
    assert first["dataset_drift"] and first["drifted_in_a_row"] == 1 and first["labelling_sheet"] is None
    drifted = drift_monitor(batch=held_out_batch(workspace), scenario="inversion", workspace=str(workspace))
    assert drifted["dataset_drift"] and drifted["drifted_in_a_row"] == 2
    # Nothing new to learn from: no retraining; the model, params and evaluation are as they were (the monitor
    # reruns only report_index, so the index shows its checks).
    assert drifted["retraining_flow_run_id"] is None
    after = snapshot(workspace)
    assert {name: after[name] for name in MODEL_FILES} == {name: before[name] for name in MODEL_FILES}
    sheet = pd.read_csv(drifted["labelling_sheet"], keep_default_na=False)
    assert len(sheet) == drifted["batch"]["images"]
    assert list(sheet["confidence"]) == sorted(sheet["confidence"])  # least confident first
    assert set(sheet["label"]) == {""}
    assert all((Path(drifted["labelling_sheet"]).parent / name).is_file() for name in sheet["file"][:5])
    # Each check's folder still holds its verdict, and the artifact links that folder's page.
    check = checks_dir(workspace) / drifted["check"]["id"]
    assert json.loads((check / "summary.json").read_text())["verdict"] == "drift"
    summary = read_artifacts(drifted["flow_run_id"])["drift-summary"].data
    assert "**Dataset drift**" in summary and (check / "page.html").as_uri() in summary
    assert (checks_dir(workspace) / clean["check"]["id"] / "report.html").is_file()
    # What the monitor did next, and which batch it checked, on the check's page, in the artifact and the index.
    assert first["decision"].startswith("waiting for another drifted check: 1 of drift.retrain_after (2)")
    assert drifted["decision"].startswith("drift confirmed (2 drifted checks in a row), but no accepted data")
    page = (check / "page.html").read_text()
    assert f"<b>What the drift monitor did next</b>: {drifted['decision']}." in page
    assert '<a href="labelling/labels.csv">The labelling sheet</a>' in page
    assert f"**Then**: {drifted['decision']}." in summary and Path(drifted["labelling_sheet"]).as_uri() in summary
    assert drifted["batch"]["sha256"][:16] in summary and drifted["batch"]["source"] in summary
    index = (workspace / "reports" / "index.html").read_text()
    assert f"checks/{drifted['check']['id']}/page.html" in index
    assert f"Then the drift monitor: {drifted['decision']}." in index and drifted["batch"]["sha256"][:16] in index


def accept_new_kind(workspace: Path, batch: str, count: int) -> None:
    """A labelled batch of the drifted kind (inverted images, here from the training file, so that they are no test
    images), accepted by fashion-accept from data/incoming/."""
    from pipeline.data.preprocessing import load_arrays

    images, labels = load_arrays(workspace / "data" / "prepared" / "train.npz")
    incoming = workspace / "data" / "incoming" / batch
    incoming.mkdir(parents=True)
    np.savez_compressed(incoming / "labelled.npz", images=255 - images[:count], labels=labels[:count])
    command = [sys.executable, "-m", "pipeline.commands.accept", str(incoming.relative_to(workspace))]
    accepted = subprocess.run(command, cwd=workspace, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr


def test_monitor_retrains_through_the_gate_once_labelled_data_is_accepted(first_run, workspace):
    accept_new_kind(workspace, "inverted-week-1", 600)
    again = drift_monitor(batch=held_out_batch(workspace), scenario="inversion", workspace=str(workspace))
    assert again["dataset_drift"] and again["labelling_sheet"] is None
    with get_client(sync_client=True) as client:
        retraining = client.read_flow_run(again["retraining_flow_run_id"])
        assert client.read_flow(retraining.flow_id).name == "training-pipeline"
    assert retraining.state.is_completed()
    decision = json.loads((workspace / "reports" / "runs" / retraining.name / "promotion.json").read_text())
    # This workspace's gate is wide (GATE above): the retrained model is promoted, with the batch in its data.
    assert decision["promoted"], decision
    metrics = json.loads((workspace / "reports" / "evaluate" / "metrics.json").read_text())
    assert metrics["sources"]["inverted-week-1"]["images"] == decision["rows"][1]["images"] > 0
    assert metrics["sources"]["inverted-week-1"]["accuracy"] == decision["rows"][1]["candidate"]
    lineage = json.loads((workspace / "reports" / "evaluate" / "lineage.json").read_text())
    assert lineage["accepted batches"].startswith("inverted-week-1 (inverted-week-1, sha256:")
    # The promoted index links the checks the candidate's drift stage made: they joined the workspace's.
    index = (workspace / "reports" / "index.html").read_text()
    linked = re.findall(r'href="(drift/checks/[^"]+)"', index)
    assert linked and all((workspace / "reports" / link).exists() for link in linked)
    artifacts = read_artifacts(retraining.id)
    assert (
        "promoted" in artifacts["promotion-decision"].data
        and "new source inverted-week-1" in artifacts["promotion-decision"].data
    )


def test_a_weak_candidate_is_refused_and_changes_nothing(first_run, workspace):
    before = snapshot(workspace)
    state = training_pipeline(
        overrides={"train.learning_rate": 1e-7}, workspace=str(workspace), promote_if_better=True, return_state=True
    )
    assert state.is_completed(), state.message
    experiment = read_flow_run(state).name
    decision = json.loads((workspace / "reports" / "runs" / experiment / "promotion.json").read_text())
    assert not decision["promoted"]
    assert decision["reasons"][0].startswith("accuracy on the original test set drops")
    assert snapshot(workspace) == before
    assert "kept the model in use" in read_artifacts(state.state_details.flow_run_id)["promotion-decision"].data
    # Refused candidates' experiments beyond promote.keep_refused_experiments go; every decision's record stays.
    assert experiment in experiment_names(workspace)
    assert drop_refused_experiments(workspace, keep=0, echo=lambda line: None) == [experiment]
    assert experiment not in experiment_names(workspace)
    kept = json.loads((workspace / "reports" / "runs" / experiment / "promotion.json").read_text())
    assert kept == {**decision, "experiment_removed": True}
    assert drop_refused_experiments(workspace, keep=0, echo=lambda line: None) == []


def experiment_names(workspace: Path) -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "list", "--all-commits", "--name-only"],
        cwd=workspace,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    return set(listed.stdout.split())


def test_monitor_pools_small_batches_until_they_are_enough(first_run, workspace, tmp_path):
    from pipeline.data.preprocessing import load_arrays

    images, _ = load_arrays(workspace / "data" / "prepared" / "test.npz")
    summaries = []
    for day in range(3):  # 8 images a day, 20 needed
        np.save(tmp_path / f"day{day}.npy", images[day * 8 : (day + 1) * 8])
        summaries.append(drift_monitor(batch=str(tmp_path / f"day{day}.npy"), workspace=str(workspace)))
    assert [summary["verdict"] for summary in summaries[:2]] == ["inconclusive", "inconclusive"]
    assert all(summary["retraining_flow_run_id"] is None for summary in summaries)
    pooled = summaries[2]
    assert pooled["verdict"] == "no drift" and pooled["batch"]["images"] == 24
    assert len(pooled["check"]["pooled"]) == 3


def test_monitor_checks_a_folder_of_pictures(first_run, workspace, tmp_path):
    from PIL import Image

    from pipeline.data.preprocessing import load_arrays

    images, _ = load_arrays(workspace / "data" / "prepared" / "test.npz")
    for index, image in enumerate(images[:300]):
        Image.fromarray(image[..., 0]).save(tmp_path / f"{index:03d}.png")
    summary = drift_monitor(batch=str(tmp_path), retrain_on_drift=False, workspace=str(workspace))
    assert summary["batch"]["images"] == 300 and summary["batch"]["source"] == str(tmp_path)
    assert summary["retraining_flow_run_id"] is None
