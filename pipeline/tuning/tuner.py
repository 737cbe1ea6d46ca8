"""A KerasTuner search over the train stage's hyperparameters: grid, random, Bayesian optimisation or Hyperband.

Every trial is built, compiled and fed by the train stage's own code (pipeline/model/network.py,
pipeline/model/training.py) from the train section with the trial's values (pipeline/tuning/search_space.py), within a
budget of search time.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

from pipeline.keras_runtime import load_keras
from pipeline.model.network import compile_model
from pipeline.model.training import seed_everything, training_datasets, training_precision
from pipeline.tuning.keras_tuner_patches import forget_unrecorded_trials, install_atomic_state_writes
from pipeline.tuning.objectives import is_maximised
from pipeline.tuning.search_space import TuneParams

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
    """This process's name in a distributed search (see pipeline/tuning/workers.py), or "main" in a single one."""
    return os.environ.get("KERASTUNER_TUNER_ID", "main")


def stop_when_spent(oracle, clock: SearchClock) -> None:
    """In a distributed search the chief's oracle hands out every worker's trials: close it once time is up."""
    while not clock.exhausted:
        time.sleep(5)
    oracle.max_trials = len(oracle.trials)


def make_tuner(params: TuneParams, state_dir: Path, train_split, val_split):
    """A KerasTuner tuner of the chosen strategy whose trials are the train stage's model on the prepared data."""
    load_keras()
    import keras_tuner

    install_atomic_state_writes()

    space, epochs = params.space, params.epochs
    clock = SearchClock(state_dir, params.max_minutes * 60)

    def trial_train_params(hp):
        """The train params of the trial whose values `hp` holds: the train section with them in place."""
        return space.train_params(space.declare(hp), epochs)

    class TrialModel(keras_tuner.HyperModel):
        def build(self, hp):
            train_params = trial_train_params(hp)
            seed_everything(train_params.seed)
            with training_precision(train_params):
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
            print(
                f"tune: trial {trial.trial_id} {trial.status.lower()}, {params.objective} {score}, "
                f"search time {clock.spent / 60:.1f} min",
                flush=True,
            )

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
