"""The tuning flow for real: Prefect's test server, DVC experiments, the real data, models that train in seconds."""

import json

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.tuning import tuning_pipeline
from tests.support.training import FAST_REAL_TRAIN
from tests.support.workspaces import commit_params, run

pytestmark = pytest.mark.slow

TINY_SEARCH = {
    "tune.strategy": "random",
    "tune.max_trials": 2,
    "tune.epochs": 1,
    "tune.final_epochs": None,  # the challenger trains for FAST_REAL_TRAIN's epochs
    "tune.space": {"dense_units": [16, 64], "learning_rate": [0.001, 0.003]},
}


@pytest.fixture(scope="module")
def tuned(prefect_backend, copy_of_small_workspace):
    # The model in use is the small workspace's; the search and the challenger are this run's.
    workspace = commit_params(copy_of_small_workspace("tuning"), TINY_SEARCH)
    state = tuning_pipeline(workspace=str(workspace), return_state=True)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    return workspace, state.result(), {artifact.key: artifact for artifact in artifacts}


def experiments(workspace) -> str:
    return run(["dvc", "exp", "list", "--all-commits", "--name-only"], workspace).stdout


def test_the_challenger_is_the_best_trial_trained_in_full(tuned):
    workspace, result, _ = tuned
    best = yaml.safe_load((workspace / "reports" / "tune" / "best_params.yaml").read_text())["train"]
    assert result["tuned"] == best and set(best) == {"dense_units", "learning_rate"}
    assert result["challenger"]["accuracy"] > 0.5
    assert result["challenger_experiment"] in experiments(workspace)


def test_promotion_follows_the_test_accuracy_and_keeps_the_loser(tuned):
    workspace, result, _ = tuned
    params = yaml.safe_load((workspace / "params.yaml").read_text())["train"]
    metrics = json.loads((workspace / "reports" / "evaluate" / "metrics.json").read_text())
    assert result["promoted"] == (result["challenger"]["accuracy"] > result["champion"]["accuracy"])
    if result["promoted"]:
        # The workspace now has the challenger's params, model and reports; the champion is an experiment.
        assert all(params[key] == value for key, value in result["tuned"].items())
        assert metrics["accuracy"] == result["challenger"]["accuracy"]
        assert result["champion_experiment"] in experiments(workspace)
    else:
        assert metrics["accuracy"] == result["champion"]["accuracy"]
        assert params["dense_units"] == FAST_REAL_TRAIN["train.dense_units"]


def test_the_decision_is_published_with_the_metrics_diff(tuned):
    _, result, artifacts = tuned
    decision = artifacts["tuning-decision"].data
    assert ("**Promoted**" in decision) == result["promoted"]
    accuracy_row = next(line for line in decision.splitlines() if line.startswith("| accuracy |"))
    change = result["challenger"]["accuracy"] - result["champion"]["accuracy"]
    assert accuracy_row.endswith(f"| {change:+.4f} |")
