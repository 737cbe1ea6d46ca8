"""The tune stage: each strategy on a tiny search, resuming an interrupted search, and malformed search spaces."""

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from pipeline.errors import PipelineError
from pipeline.params import load_params
from pipeline.tuning.search_space import TuneParams
from tests.support.data import set_keys, write_manifest
from tests.support.training import TINY_TRAIN
from tests.support.workspaces import REPO_ROOT

TINY_SPACE = {
    "learning_rate": [0.003, 0.01],
    "dense_units": [16, 32],
    "conv_blocks": {"min": 1, "max": 2},
}


@pytest.fixture
def search_dir(tmp_path, prepared_dir):
    """conftest's square-task splits (in tmp_path/prepared) and a manifest beside them."""
    (tmp_path / "raw").mkdir()
    write_manifest(tmp_path / "raw")
    return tmp_path


def write_tune_params(directory, **tune):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    set_keys(params, TINY_TRAIN)
    params["tune"].update({"max_trials": 3, "epochs": 2, "final_epochs": None, "space": TINY_SPACE, **tune})
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def tune_command(directory) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.stages.tune",
        "--params",
        str(directory / "params.yaml"),
        "--prepared",
        str(directory / "prepared"),
        "--manifest",
        str(directory / "raw" / "manifest.json"),
        "--state",
        str(directory / "state"),
        "--out",
        str(directory / "out"),
    ]


def run_tune(directory) -> subprocess.CompletedProcess:
    result = subprocess.run(tune_command(directory), capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def finished_trials(output: str) -> list[str]:
    return [line.split()[2] for line in output.splitlines() if line.startswith("tune: trial ")]


@pytest.mark.parametrize("strategy", ["grid", "random", "bayesian", "hyperband"])
def test_each_strategy_finds_a_best_configuration_inside_the_space(search_dir, strategy):
    write_tune_params(search_dir, strategy=strategy)
    run_tune(search_dir)
    trials = pd.read_csv(search_dir / "out" / "trials.csv")
    assert len(trials) >= 2 and (trials["status"] == "completed").all()
    assert trials["val_accuracy"].between(0, 1).all() and (trials["seconds"] > 0).all()
    best = yaml.safe_load((search_dir / "out" / "best_params.yaml").read_text())["train"]
    assert set(best) == {"learning_rate", "dense_units", "conv_filters"}
    assert best["learning_rate"] in TINY_SPACE["learning_rate"] and best["dense_units"] in TINY_SPACE["dense_units"]
    assert best["conv_filters"] in ([8], [8, 16])  # one or two blocks from the train section's first filters
    best_row = trials.loc[trials["val_accuracy"].idxmax()]
    assert best["learning_rate"] == best_row["learning_rate"] and best["dense_units"] == best_row["dense_units"]
    report = (search_dir / "out" / "report.html").read_text()
    assert "Trials, best first" in report and report.count("data:image/png;base64,") == 1
    assert "http://" not in report and "https://" not in report


# Slow: every combination of the grid is a trial (eight).
@pytest.mark.slow
def test_grid_search_tries_each_combination_once(search_dir):
    write_tune_params(search_dir, strategy="grid", max_trials=20)
    run_tune(search_dir)
    trials = pd.read_csv(search_dir / "out" / "trials.csv")
    combinations = trials[["learning_rate", "dense_units", "conv_blocks"]].drop_duplicates()
    assert len(trials) == len(combinations) == 8


def test_the_best_configuration_trains_for_final_epochs_with_its_values_rounded(search_dir):
    space = {
        **TINY_SPACE,
        "learning_rate": {"min": 0.002, "max": 0.02, "sampling": "log"},
        "augment_erasing": [0.0, 0.3],
        "label_smoothing": [0.1],
    }
    write_tune_params(search_dir, strategy="random", max_trials=2, final_epochs=7, space=space)
    run_tune(search_dir)
    trials = pd.read_csv(search_dir / "out" / "trials.csv")
    assert (trials["epochs"] == 2).all()  # the trials themselves ran tune.epochs
    best = yaml.safe_load((search_dir / "out" / "best_params.yaml").read_text())["train"]
    assert best["epochs"] == 7 and best["augment_erasing"] in (0.0, 0.3) and best["label_smoothing"] == 0.1
    best_row = trials.loc[trials["val_accuracy"].idxmax()]
    assert len(str(best_row["learning_rate"])) > 8  # sampled on a log scale: many digits
    assert best["learning_rate"] == float(f"{best_row['learning_rate']:.3g}")
    # The key held fixed has neither a plot panel nor a column, only its line; the searched keys have both.
    report = (search_dir / "out" / "report.html").read_text()
    assert "Held fixed in every trial: label_smoothing 0.1." in report
    assert "<th>label smoothing</th>" not in report and "<th>augment erasing</th>" in report


def test_a_val_loss_search_adopts_its_lowest_loss(search_dir):
    write_tune_params(search_dir, strategy="random", max_trials=3, objective="val_loss")
    result = run_tune(search_dir)
    trials = pd.read_csv(search_dir / "out" / "trials.csv")
    assert list(trials.columns[:3]) == ["trial", "status", "val_loss"]
    lowest = trials.loc[trials["val_loss"].idxmin()]
    assert trials["val_loss"].nunique() > 1  # otherwise any trial would pass as the best
    best_file = (search_dir / "out" / "best_params.yaml").read_text()
    best = yaml.safe_load(best_file)["train"]
    assert best["learning_rate"] == lowest["learning_rate"] and best["dense_units"] == lowest["dense_units"]
    assert f"val_loss {lowest['val_loss']:.4f}" in best_file
    assert f"tune: best val_loss {lowest['val_loss']:.4f} of 3 trials" in result.stdout


def test_final_epochs_must_be_a_whole_number_or_null(tmp_path):
    with pytest.raises(PipelineError, match=r"tune\.final_epochs must be >= 1 or null, got 0$"):
        load_params(TuneParams, write_tune_params(tmp_path, final_epochs=0))
    with pytest.raises(PipelineError, match=r"tune\.final_epochs must be an integer or null, got 2\.5$"):
        load_params(TuneParams, write_tune_params(tmp_path, final_epochs=2.5))
    assert load_params(TuneParams, write_tune_params(tmp_path, final_epochs=None)).final_epochs is None


# Slow: a search, stopped, then resumed.
@pytest.mark.slow
def test_an_interrupted_search_resumes_without_redoing_finished_trials(search_dir):
    write_tune_params(search_dir, strategy="random", max_trials=4)
    process = subprocess.Popen(tune_command(search_dir), stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    before = []
    for line in process.stdout:
        if line.startswith("tune: trial "):
            before.append(line.split()[2])
        if len(before) == 2:
            process.send_signal(signal.SIGKILL)  # as a crash or a lost machine would stop it
            break
    process.wait()
    # On a busy machine another trial can finish before the kill lands; it was finished, so it must not rerun.
    before += finished_trials(process.stdout.read())
    assert before[:2] == ["0", "1"] and len(before) < 4
    assert not (search_dir / "out").exists()
    resumed = run_tune(search_dir)
    assert "resuming the search" in resumed.stdout
    after = finished_trials(resumed.stdout)
    assert before + after == ["0", "1", "2", "3"]
    assert pd.read_csv(search_dir / "out" / "trials.csv")["trial"].tolist() == [0, 1, 2, 3]


# Slow: a search, stopped, then resumed.
@pytest.mark.slow
def test_a_search_stopped_between_a_new_trials_two_state_writes_runs_that_trial_on_resuming(search_dir, monkeypatch):
    from keras_tuner.src.engine.oracle import Oracle

    from pipeline.stages.tune import main

    write_tune_params(search_dir, strategy="random", max_trials=4)
    save_oracle = Oracle.save

    def stop_before_listing_trial_2(oracle):
        if "2" in oracle.start_order:  # trial_2/trial.json is written; oracle.json is not yet
            raise KeyboardInterrupt
        save_oracle(oracle)

    monkeypatch.setattr(Oracle, "save", stop_before_listing_trial_2)
    with pytest.raises(KeyboardInterrupt):
        main(tune_command(search_dir)[3:])
    monkeypatch.setattr(Oracle, "save", save_oracle)
    assert (search_dir / "state").is_dir() and not (search_dir / "out").exists()
    resumed = run_tune(search_dir)
    assert "resuming the search" in resumed.stdout and finished_trials(resumed.stdout) == ["2", "3"]
    trials = pd.read_csv(search_dir / "out" / "trials.csv")
    assert trials["trial"].tolist() == [0, 1, 2, 3] and (trials["status"] == "completed").all()


def test_a_state_write_that_fails_part_way_leaves_the_last_state_readable(tmp_path, monkeypatch):
    from pipeline.tuning.keras_tuner_patches import save_json_atomically

    state_file = tmp_path / "oracle.json"
    save_json_atomically(state_file, {"trials": 1})

    def crash(*_):
        raise KeyboardInterrupt  # as a stop between writing the new state and putting it in place would

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_json_atomically(state_file, {"trials": 2})
    assert json.loads(state_file.read_text()) == {"trials": 1}


@pytest.mark.parametrize("name", ["save_json", "_get_trial_dir"])
def test_patching_a_keras_tuner_that_lacks_a_patched_name_fails_loudly(monkeypatch, name):
    """A release that moved either private name must stop the search, not run it without atomic state writes."""
    from keras_tuner.src import utils
    from keras_tuner.src.engine.oracle import Oracle

    from pipeline.tuning.keras_tuner_patches import install_atomic_state_writes

    monkeypatch.delattr(utils if name == "save_json" else Oracle, name)
    with pytest.raises(RuntimeError, match=f"no .*{name}; see pipeline/tuning/keras_tuner_patches.py"):
        install_atomic_state_writes()


# Slow: two searches.
@pytest.mark.slow
def test_a_changed_search_starts_anew(search_dir):
    write_tune_params(search_dir, strategy="random", max_trials=2)
    run_tune(search_dir)
    write_tune_params(search_dir, strategy="random", max_trials=2, seed=8)
    rerun = run_tune(search_dir)
    assert "resuming" not in rerun.stdout and finished_trials(rerun.stdout) == ["0", "1"]


# Slow: a search, then the same search with a larger budget.
@pytest.mark.slow
def test_raising_max_trials_continues_a_finished_search_with_its_trials(search_dir):
    write_tune_params(search_dir, strategy="random", max_trials=2)
    first = run_tune(search_dir)
    write_tune_params(search_dir, strategy="random", max_trials=3)
    rerun = run_tune(search_dir)
    assert finished_trials(first.stdout) == ["0", "1"]
    assert "resuming the search" in rerun.stdout and finished_trials(rerun.stdout) == ["2"]
    assert pd.read_csv(search_dir / "out" / "trials.csv")["trial"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"dropout": [0.1, 0.2]}, "tune.space.dropout is not a tunable hyperparameter"),
        ({"batch_size": []}, "tune.space.batch_size is an empty list of values"),
        (
            {"learning_rate": {"min": 0.01, "max": 0.001}},
            "tune.space.learning_rate: min 0.01 is greater than max 0.001",
        ),
        ({"dense_units": {"min": 64, "max": 64}}, "tune.space.dense_units: min and max are both 64"),
        ({"learning_rate": {"min": 0, "max": 0.1, "sampling": "log"}}, "tune.space.learning_rate: sampling must be"),
        ({"dense_dropout": [0.2, 1.5]}, "tune.space.dense_dropout value 1.5 makes invalid train params"),
        ({"conv_blocks": [2, 5]}, "tune.space.conv_blocks value 5 makes invalid train params"),
        ({"kernel_size": {"low": 3, "high": 5}}, "tune.space.kernel_size must be a list of values or {min, max"),
        ({}, "tune.space must be a non-empty mapping"),
    ],
)
def test_a_malformed_search_space_is_an_error_naming_the_key(tmp_path, space, message):
    path = write_tune_params(tmp_path, space=space)
    with pytest.raises(PipelineError, match="^" + str(path).replace(".", r"\.") + r": ") as raised:
        load_params(TuneParams, path)
    assert message in str(raised.value)


def test_val_loss_cannot_rank_trials_of_different_label_smoothing(tmp_path):
    path = write_tune_params(tmp_path, objective="val_loss", space={"label_smoothing": [0.0, 0.1]})
    with pytest.raises(PipelineError, match="tune.space.label_smoothing varies, so objective val_loss cannot compare"):
        load_params(TuneParams, path)
    load_params(TuneParams, write_tune_params(tmp_path, objective="val_loss", space={"label_smoothing": [0.1]}))


def test_grid_search_needs_steps_on_continuous_ranges(tmp_path):
    path = write_tune_params(tmp_path, strategy="grid", space={"learning_rate": {"min": 0.001, "max": 0.01}})
    with pytest.raises(PipelineError, match="tune.space.learning_rate needs a step or a list of values for grid"):
        load_params(TuneParams, path)


def test_the_stage_reports_a_malformed_space_in_one_line(search_dir):
    write_tune_params(search_dir, space={"dense_units": {"min": 64, "max": 32}})
    result = subprocess.run(tune_command(search_dir), capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("tune: error: ") and "tune.space.dense_units: min 64 is greater than max 32" in line


def adopt(params_file, best_file, check=True):
    command = [sys.executable, "-m", "pipeline.commands.adopt", "--params", str(params_file), "--best", str(best_file)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0 or not check, result.stderr
    return result


def test_adopting_changes_only_the_tuned_lines_of_params_yaml(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((REPO_ROOT / "params.yaml").read_text())
    best = {"learning_rate": 0.0031, "conv_filters": [48, 96], "batch_norm": False}
    (tmp_path / "best.yaml").write_text(yaml.safe_dump({"train": best}))
    result = adopt(params_file, tmp_path / "best.yaml")
    assert "adopt: train.conv_filters: [32, 64, 128] -> [48, 96]" in result.stdout
    before, after = (REPO_ROOT / "params.yaml").read_text().splitlines(), params_file.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert [new.split("#")[0].strip() for _, new in changed] == [
        "conv_filters: [48, 96]",
        "batch_norm: false",
        "learning_rate: 0.0031",
    ]
    # The changed lines' own comments said why the old values; they now say where the new ones came from, and
    # the comment lines of their own stay (the line count is unchanged above).
    assert all(new.endswith(f"# adopted from {tmp_path / 'best.yaml'}") for _, new in changed)


@pytest.mark.parametrize(
    ("best", "message"),
    [
        ({"dense_dropout": 1.5}, "train.dense_dropout must be >= 0 and < 1, got 1.5"),
        ({"dropout": 0.3}, "cannot override train.dropout: no such key"),
        ({}, "expected a non-empty 'train' mapping"),
    ],
)
def test_adopting_a_bad_best_file_leaves_params_yaml_as_it_was(tmp_path, best, message):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((REPO_ROOT / "params.yaml").read_text())
    (tmp_path / "best.yaml").write_text(yaml.safe_dump({"train": best}))
    result = adopt(params_file, tmp_path / "best.yaml", check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("adopt: error: ") and message in line
    assert params_file.read_text() == (REPO_ROOT / "params.yaml").read_text()


# Slow: KerasTuner's chief serves the search over gRPC to two worker processes.
@pytest.mark.slow
def test_two_workers_share_one_search(search_dir):
    write_tune_params(search_dir, strategy="random", max_trials=6, workers=2)
    run_tune(search_dir)
    trials = pd.read_csv(search_dir / "out" / "trials.csv")
    assert len(trials) == 6 and (trials["status"] == "completed").all()
    assert sorted(set(trials["worker"])) == ["tuner0", "tuner1"]  # both workers trained trials of the one search
    assert trials[["learning_rate", "dense_units", "conv_blocks"]].notna().all().all()
