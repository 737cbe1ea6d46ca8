"""The flows' own logic, without Prefect: overrides of params.yaml, stage failure messages, metrics summaries."""

import copy

import pytest
import yaml

from flows.command_line import one_line
from flows.dvc_stages import StageFailed, StageRun, dvc_command, failure_message
from flows.live_accuracy import live_next_step
from flows.overrides import parse_assignment
from flows.summary import changes, metrics_table, summary_markdown
from pipeline.errors import PipelineError
from pipeline.params_edit import edited_text
from tests.support.workspaces import REPO_ROOT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs=20", ("train.epochs", 20)),
        ("train.conv_filters=[8, 16]", ("train.conv_filters", [8, 16])),
        ("train.batch_norm=false", ("train.batch_norm", False)),
        ("ingest.source_dir=/data/fashion", ("ingest.source_dir", "/data/fashion")),
        # YAML 1.1 would read these as strings.
        ("train.learning_rate=1e-7", ("train.learning_rate", 1e-7)),
        ("train.learning_rate=2E-3", ("train.learning_rate", 2e-3)),
    ],
)
def test_assignments_read_their_values_as_yaml(text, expected):
    assert parse_assignment(text) == expected


def test_an_assignment_without_a_value_is_an_error():
    with pytest.raises(PipelineError, match="must look like section.key=value"):
        parse_assignment("train.epochs")


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO_ROOT / "params.yaml").read_text())
    return path


def test_overrides_are_applied_to_a_copy_with_comments_kept(params_file):
    original = params_file.read_text()
    edited = edited_text(params_file, {"train.epochs": 2, "validate.expected_rows.test": 50})
    assert yaml.safe_load(edited)["train"]["epochs"] == 2
    assert yaml.safe_load(edited)["validate"]["expected_rows"] == {"train": 60000, "test": 50}
    assert "# share of the training images held out" in edited  # a run workspace's params.yaml reads as the original
    assert params_file.read_text() == original


@pytest.mark.parametrize("value", [1e-7, 2.5e-12, 0.001, 1e20, 3.0])
def test_an_overridden_float_reads_back_as_a_float(params_file, value):
    # ruamel writes 1e-7 as `1e-07`, which DVC's and PyYAML's YAML 1.1 read as a string.
    assert yaml.safe_load(edited_text(params_file, {"train.learning_rate": value}))["train"]["learning_rate"] == value


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("train.epoch", "cannot override train.epoch: no such key"),
        ("trian.epochs", "cannot override trian.epochs: no section trian"),
        ("validate.expected_rows.val", "cannot override validate.expected_rows.val: no such key"),
    ],
)
def test_an_unknown_key_is_an_error_naming_it(params_file, key, message):
    with pytest.raises(PipelineError, match=message) as raised:
        edited_text(params_file, {key: 1})
    assert str(params_file) in str(raised.value)


def test_a_failed_stage_is_reported_by_its_own_error_line():
    lines = [
        "Running stage 'validate':",
        "> python -m pipeline.stages.validate ...",
        "validate: error: train: expect_table_row_count_to_equal failed",
        "ERROR: failed to reproduce 'validate': failed to run: python -m pipeline.stages.validate, exited with 1",
    ]
    repro_train = dvc_command("repro", "--single-item", "train")
    assert (
        failure_message("validate", lines, 1, repro_train)
        == "validate: error: train: expect_table_row_count_to_equal failed"
    )
    assert failure_message("train", lines, 1, repro_train).startswith("ERROR: failed to reproduce 'validate'")
    assert failure_message("train", [], 255, repro_train) == "dvc repro --single-item train exited with code 255"
    apply = dvc_command("exp", "apply", "challenger-1")
    assert failure_message("exp apply", [], 1, apply) == "dvc exp apply challenger-1 exited with code 1"


def test_dvc_errors_keep_the_lines_that_continue_them():
    # DVC's own output for a params.yaml with an unclosed list, and for a stage another process is writing.
    yaml_error = [
        "ERROR: unable to read: 'params.yaml', YAML file structure is corrupted: while parsing a flow sequence",
        '  in "<unicode string>", line 2, column 4:',
        "    y: [1, 2",
        "       ^ (line: 2)",
        "expected ',' or ']', but got '<stream end>'",
    ]
    message = failure_message("ingest", yaml_error, 255, dvc_command("repro", "--single-item", "ingest"))
    assert message.startswith("ERROR: unable to read: 'params.yaml'") and "line 2, column 4" in message
    assert "\n" not in message
    lock_error = [
        "ERROR: failed to reproduce 'train': 'models/model.keras' is busy, it is being blocked by:",
        "  (PID 4242): dvc repro",
        "",
        "If there are no processes with such PIDs, you can manually remove '.dvc/tmp/rwlock' and try again.",
        "Having any troubles? Hit us up at https://dvc.org/support, we are always happy to help!",
    ]
    message = failure_message("train", lock_error, 255, dvc_command("repro", "--single-item", "train"))
    assert message.endswith(
        "(PID 4242): dvc repro If there are no processes with such PIDs, you can manually "
        "remove '.dvc/tmp/rwlock' and try again."
    )


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (StageFailed("drift: error: batch.npz: no images"), "drift-monitor: error: drift: batch.npz: no images"),
        (
            StageFailed("ERROR: unable to read: 'params.yaml'"),
            "drift-monitor: error: dvc: unable to read: 'params.yaml'",
        ),
        (PipelineError("/ws: still in use"), "drift-monitor: error: /ws: still in use"),
    ],
)
def test_a_flow_failure_is_one_line_naming_the_stage_once(error, line):
    assert one_line("drift-monitor", error) == line


@pytest.fixture
def metrics():
    names = ["T-shirt/top", "Trouser"]
    per_class = {name: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 100} for name in names}
    return {"accuracy": 0.9, "macro_f1": 0.85, "loss": 0.3, "per_class": per_class}


def test_metrics_table_has_every_metric_beside_the_one_before(metrics):
    previous = copy.deepcopy(metrics)
    previous["accuracy"] = 0.85
    rows = {(row["scope"], row["metric"]): row for row in metrics_table(metrics, previous)}
    assert len(rows) == 3 + 2 * 3
    assert rows[("overall", "accuracy")]["change"] == "+0.0500"
    assert rows[("Trouser", "recall")] == {
        "scope": "Trouser",
        "metric": "recall",
        "value": 0.8,
        "before this run": 0.8,
        "change": "+0.0000",
    }
    first = metrics_table(metrics, None)
    assert all(row["before this run"] == "-" for row in first)
    # A fresh clone's first run: the committed headline metrics before it, without the per-class file.
    cloned = {name: value for name, value in previous.items() if name != "per_class"}
    rows = {(row["scope"], row["metric"]): row for row in metrics_table(metrics, cloned)}
    assert (
        rows[("overall", "accuracy")]["before this run"] == 0.85
        and rows[("Trouser", "recall")]["before this run"] == "-"
    )


def test_changes_name_what_moved_only(metrics):
    previous = copy.deepcopy(metrics)
    previous["per_class"]["Trouser"]["f1"] = 0.95
    assert changes(metrics, previous) == ["Trouser f1: 0.9500 -> 0.8500 (-0.1000)"]
    assert changes(metrics, metrics) == ["No metric changed against the run before."]
    assert "first evaluation" in changes(metrics, None)[0]


def test_summary_links_the_reports_that_exist(tmp_path, metrics):
    # The kept reports of a run with overrides: the layout of reports/, in a folder of their own.
    reports_dir = tmp_path / "reports" / "runs" / "brave-owl"
    report = reports_dir / "evaluate" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    runs = [StageRun("train", ran=True, seconds=3.0), StageRun("evaluate", ran=False, seconds=0.5)]
    text = summary_markdown(reports_dir, runs, metrics, None, experiment="brave-owl")
    assert f"[Evaluation report]({report.resolve().as_uri()})" in text
    assert "Data Docs" not in text  # not produced here, so not linked
    assert "| train | ran | 3.0 |" in text and "| evaluate | up to date | 0.5 |" in text
    assert "`python -m flows.apply_experiment brave-owl`" in text


@pytest.mark.parametrize(
    "verdict, retrain, unseen, expected",
    [
        ("not shown worse", True, ["week-49"], "nothing: the model is not shown to be worse live"),
        ("inconclusive", True, [], "nothing: the model is not shown to be worse live"),
        ("worse live", True, ["week-49"], "worse live: retraining on 1 accepted batch(es) the model has not seen"),
        ("worse live", False, ["week-49"], "worse live, but retraining is off"),
        ("worse live", True, [], "label the live sheets and offer them to the pool"),
    ],
)
def test_the_monitor_retrains_on_worse_live_only_with_new_data_and_retraining_on(verdict, retrain, unseen, expected):
    assert expected in live_next_step({"verdict": verdict}, retrain, unseen)
