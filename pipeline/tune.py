"""tune: search the train stage's hyperparameters with KerasTuner: grid, random, Bayesian optimisation or Hyperband.

Every trial is built, compiled and fed by the train stage's own code (pipeline/model.py, pipeline/train.py) from the
train section with the trial's values (pipeline/search_space.py). The search state lives in --state: a rerun of the
same search (same tune and train sections, same data) goes on from the last finished trial; any change starts anew.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from pipeline.cli import run_stage
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.keras_runtime import load_keras
from pipeline.lineage import lineage
from pipeline.model import compile_model
from pipeline.params import read_section
from pipeline.preprocess import load_prepared
from pipeline.search_space import (
    FILTER_KEYS,
    TUNABLE_TRAIN_KEYS,
    TuneParams,
    best_score,
    is_maximised,
    trial_section,
)
from pipeline.train import prepare_checkpoint_dir, run_fingerprint, seed_everything, training_datasets
from pipeline.tune_workers import run_distributed
from pipeline.tuning_report import write_report

PROJECT = "search"  # KerasTuner's folder inside the state folder
TUNER_CLASSES = {
    "grid": "GridSearch",
    "random": "RandomSearch",
    "bayesian": "BayesianOptimization",
    "hyperband": "Hyperband",
}


class SearchClock:
    """Search time over all runs of one search: each finished trial's duration, one file per trial in the state
    folder (parallel workers write their own). Parallel trials overlap, so the time spent is the busiest worker's."""

    def __init__(self, state_dir: Path, budget_seconds: float):
        self.folder = state_dir / "trial_seconds"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.budget_seconds = budget_seconds

    def record(self, trial_id: str, seconds: float) -> None:
        record = {"worker": worker_id(), "seconds": round(seconds, 2)}
        (self.folder / f"{trial_id}.json").write_text(json.dumps(record))

    def records(self) -> dict[str, dict]:
        return {path.stem: json.loads(path.read_text()) for path in sorted(self.folder.glob("*.json"))}

    @property
    def spent(self) -> float:
        per_worker: dict[str, float] = {}
        for record in self.records().values():
            per_worker[record["worker"]] = per_worker.get(record["worker"], 0.0) + record["seconds"]
        return max(per_worker.values(), default=0.0)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget_seconds


def worker_id() -> str:
    """This process's name in a distributed search (see pipeline/tune_workers.py), or "main" in a single one."""
    return os.environ.get("KERASTUNER_TUNER_ID", "main")


def stop_when_spent(oracle, clock: SearchClock) -> None:
    """In a distributed search the chief's oracle hands out every worker's trials: close it once time is up."""
    while not clock.exhausted:
        time.sleep(5)
    oracle.max_trials = len(oracle.trials)


def save_json_atomically(path, state) -> str:
    """KerasTuner's state writer (oracle.json, trial.json), made atomic: KerasTuner writes these files in place,
    and a search killed during a write left a truncated oracle.json that no rerun could read."""
    text = json.dumps(state)
    with atomic_path(path) as staging:
        staging.write_text(text)
    return text


def forget_unrecorded_trials(oracle) -> None:
    """KerasTuner writes a new trial's trial.json before the oracle.json that lists it. A search killed between the
    two writes reloads a trial that the oracle neither finished nor queues to run, so it would never run. Forgetting
    it resumes the search as it was saved, before that trial began: the oracle then starts that trial afresh."""
    for trial_id in [trial_id for trial_id in oracle.trials if trial_id not in oracle.start_order]:
        del oracle.trials[trial_id]
        shutil.rmtree(oracle._get_trial_dir(trial_id))


def make_tuner(params: TuneParams, state_dir: Path, train_split, val_split):
    """A KerasTuner tuner of the chosen strategy whose trials are the train stage's model on the prepared data."""
    load_keras()
    import keras_tuner
    from keras_tuner.src import utils as keras_tuner_utils

    # Every KerasTuner state file goes through this one function (looked up on the module at each call).
    keras_tuner_utils.save_json = save_json_atomically

    space, epochs = params.space, params.epochs
    clock = SearchClock(state_dir, params.max_minutes * 60)

    def trial_train_params(hp):
        """The train params of the trial whose values `hp` holds: the train section with them in place."""
        return space.train_params(space.declare(hp), epochs)

    class TrialModel(keras_tuner.HyperModel):
        def build(self, hp):
            train_params = trial_train_params(hp)
            seed_everything(train_params.seed)
            return compile_model(train_params, math.ceil(len(train_split[1]) / train_params.batch_size))

        def fit(self, hp, model, *args, **kwargs):
            training_batches, validation_batches = training_datasets(trial_train_params(hp), train_split, val_split)
            return model.fit(
                training_batches,
                validation_data=validation_batches,
                shuffle=False,
                **kwargs,
            )

    tuner_class = getattr(keras_tuner, TUNER_CLASSES[params.strategy])

    class BudgetedTuner(tuner_class):
        """Stops starting trials once the search has used its wall-clock budget; records each trial's time."""

        def on_trial_begin(self, trial):
            self._trial_started = time.monotonic()
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            clock.record(trial.trial_id, time.monotonic() - self._trial_started)
            if clock.exhausted:
                self.oracle.max_trials = len(self.oracle.trials)
            super().on_trial_end(trial)
            score = "n/a" if trial.score is None else f"{trial.score:.4f}"
            print(f"tune: trial {trial.trial_id} {trial.status.lower()}, {params.objective} {score}, "
                  f"search time {clock.spent / 60:.1f} min", flush=True)  # fmt: skip

    direction = "max" if is_maximised(params.objective) else "min"
    options = {"objective": keras_tuner.Objective(params.objective, direction)}
    if params.strategy == "hyperband":
        options.update(max_epochs=epochs, factor=params.hyperband_factor, hyperband_iterations=1)
    else:
        options.update(max_trials=params.max_trials)
    tuner = BudgetedTuner(
        TrialModel(),
        seed=params.seed,
        directory=str(state_dir),
        project_name=PROJECT,
        overwrite=False,
        max_consecutive_failed_trials=3,
        **options,
    )
    if worker_id() in ("main", "chief"):  # the processes that hold the search's oracle
        forget_unrecorded_trials(tuner.oracle)
    if worker_id() == "chief":
        threading.Thread(target=stop_when_spent, args=(tuner.oracle, clock), daemon=True).start()
    elif clock.exhausted:
        tuner.oracle.max_trials = len(tuner.oracle.trials)
    return tuner, clock


def run_search(params: TuneParams, state_dir: Path, train_split, val_split):
    tuner, clock = make_tuner(params, state_dir, train_split, val_split)
    search_options = {} if params.strategy == "hyperband" else {"epochs": params.epochs}
    tuner.search(verbose=0, **search_options)
    return tuner, clock


def trials_table(tuner, clock: SearchClock, params: TuneParams):
    """One row per trial in the order they ran: hyperparameters, objective, epochs trained, seconds."""
    import pandas as pd

    names = [dimension.name for dimension in params.space.dimensions]
    records = clock.records()
    rows = []
    for trial_id in tuner.oracle.start_order:
        trial = tuner.oracle.trials[trial_id]
        values = trial.hyperparameters.values
        history = trial.metrics.get_history(params.objective) if trial.metrics.exists(params.objective) else []
        rows.append(
            {
                "trial": trial_id,
                "status": trial.status.lower(),
                params.objective: trial.score,
                "epochs": values.get("tuner/epochs", params.epochs) if history else 0,
                "seconds": records.get(trial_id, {}).get("seconds", np.nan),
                "worker": records.get(trial_id, {}).get("worker", ""),
                **{name: values.get(name) for name in names},
            }
        )
    return pd.DataFrame(rows)


def best_train_values(tuner, params: TuneParams) -> dict:
    """The train-section values of the best trial (conv_filters spelled out), as params.yaml takes them."""
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise PipelineError("tune: no trial finished, so there is no best configuration")
    values = {dimension.name: best[0].hyperparameters.values[dimension.name] for dimension in params.space.dimensions}
    section = trial_section(params.space.base, values, params.epochs)
    keys = [key for key in TUNABLE_TRAIN_KEYS if key in values]
    if any(key in values for key in FILTER_KEYS):
        keys.append("conv_filters")
    best_values = {key: section[key] for key in keys}
    if params.final_epochs is not None:
        # Short trials rank configurations; the adopted one trains to convergence.
        best_values["epochs"] = params.final_epochs
    return best_values


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--prepared", required=True, type=Path, help="the prepared splits' folder")
        parser.add_argument("--manifest", required=True, type=Path, help="the ingest manifest, for lineage")
        parser.add_argument("--state", required=True, type=Path, help="the search state, kept to resume a search")
        parser.add_argument("--out", required=True, type=Path, help="output folder: trials, best params, report")

    def work(arguments):
        params_file = Path(arguments.params)
        params = TuneParams.load(params_file)
        split_files = [arguments.prepared / "train.npz", arguments.prepared / "val.npz"]
        train_split, val_split = (load_prepared(path) for path in split_files)
        if worker_id() != "main":  # a chief or worker process of a distributed search: search, nothing else
            run_search(params, arguments.state, train_split, val_split)
            return
        sections = {name: read_section(name, params_file) for name in ("tune", "train")}
        # The state folder is kept the way the train stage keeps its checkpoint: only for the same search. How
        # many workers run it does not change the search.
        search = {**sections, "tune": {key: value for key, value in sections["tune"].items() if key != "workers"}}
        if prepare_checkpoint_dir(arguments.state, run_fingerprint(search, split_files)):
            print(f"tune: resuming the search in {arguments.state}")
        if params.workers > 1:
            run_distributed([sys.executable, "-m", "pipeline.tune", *(argv or sys.argv[1:])], params.workers)
            tuner, clock = make_tuner(params, arguments.state, train_split, val_split)  # reads the finished search
        else:
            tuner, clock = run_search(params, arguments.state, train_split, val_split)
        write_outputs(arguments.out, tuner, clock, params, lineage(arguments.manifest, sections))

    run_stage("tune", configure, work, argv)


def write_outputs(out: Path, tuner, clock: SearchClock, params: TuneParams, record: dict) -> None:
    table = trials_table(tuner, clock, params)
    best = best_train_values(tuner, params)
    score = best_score(table[params.objective], params.objective)
    with atomic_path(out) as out_dir:
        out_dir.mkdir()
        table.to_csv(out_dir / "trials.csv", index=False)
        write_best_params(out_dir / "best_params.yaml", best, score, len(table), params)
        (out_dir / "lineage.json").write_text(json.dumps(record, indent=2) + "\n")
        write_report(out_dir, table, best, params, record)
    print(f"tune: best {params.objective} {score:.4f} of {len(table)} trials; "
          f"{clock.spent / 60:.1f} min of search; {out / 'best_params.yaml'}")  # fmt: skip


def write_best_params(path: Path, best: dict, score: float, trial_count: int, params: TuneParams) -> None:
    header = (
        f"# The best of {trial_count} trials of a {params.strategy} search, {params.objective} {score:.4f}.\n"
        "# Adopt into params.yaml with: python -m pipeline.adopt\n"
    )
    # One key a line, values in JSON (which YAML reads): lists stay on their line, floats keep every digit.
    lines = [f"  {key}: {json.dumps(value)}" for key, value in best.items()]
    path.write_text(header + "train:\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
