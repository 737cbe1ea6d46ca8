"""What a search leaves: the trials table, and the best configuration as train-section values in best_params.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import PipelineError
from pipeline.tuning.search_space import FILTER_KEYS, TUNABLE_TRAIN_KEYS, TuneParams, trial_section

if TYPE_CHECKING:  # only named in annotations; importing it would load the whole search machinery
    from pipeline.tuning.tuner import SearchClock


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
    best_values = {key: rounded(section[key]) for key in keys}
    if params.final_epochs is not None:
        # Short trials rank configurations; the adopted one trains to convergence.
        best_values["epochs"] = params.final_epochs
    return best_values


# Significant digits a searched float is written with: a search samples its range far more coarsely than this, and
# two trials that differ only beyond it are the same configuration to within training noise.
SIGNIFICANT_DIGITS = 3


def rounded(value):
    """A float to SIGNIFICANT_DIGITS (0.002104123002218894 -> 0.0021; a step's 0.30000000000000004 -> 0.3); any
    other value as it is."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def write_best_params(path: Path, best: dict, score: float, trial_count: int, params: TuneParams) -> None:
    header = (
        f"# The best of {trial_count} trials of a {params.strategy} search, {params.objective} {score:.4f}.\n"
        "# Adopt into params.yaml with: python -m pipeline.commands.adopt\n"
    )
    # One key a line, values in JSON (which YAML reads): lists stay on their line.
    lines = [f"  {key}: {json.dumps(value)}" for key, value in best.items()]
    path.write_text(header + "train:\n" + "\n".join(lines) + "\n")
