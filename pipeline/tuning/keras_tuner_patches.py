"""The two places where the tune stage reaches into KerasTuner's private API, and why.

Checked against keras-tuner 1.4.7 and 1.4.8 (pyproject.toml pins the project to that range: both names below are
private and may move in any other release).
- `keras_tuner.src.utils.save_json` writes every state file (oracle.json, trial.json) in place; a search killed
  during a write left a truncated oracle.json that no rerun could read. It is replaced by an atomic writer.
- KerasTuner writes a new trial's trial.json before the oracle.json that lists it; `Oracle._get_trial_dir` names the
  folder of such a half-recorded trial, so it can be removed (see `forget_unrecorded_trials`).
"""

from __future__ import annotations

import json
import shutil

from pipeline.files import atomic_path


def save_json_atomically(path, state) -> str:
    """KerasTuner's state writer (oracle.json, trial.json), made atomic."""
    text = json.dumps(state)
    with atomic_path(path) as staging:
        staging.write_text(text)
    return text


def install_atomic_state_writes() -> None:
    """Every KerasTuner state file goes through `save_json_atomically` (KerasTuner looks the writer up on its
    utils module at each call); both private names this module relies on are checked first."""
    from keras_tuner.src import utils as keras_tuner_utils
    from keras_tuner.src.engine.oracle import Oracle

    # Fail loudly rather than patch nothing, should a release move either private name.
    for owner, name in ((keras_tuner_utils, "save_json"), (Oracle, "_get_trial_dir")):
        if not hasattr(owner, name):
            raise RuntimeError(
                f"this keras-tuner has no {owner.__name__}.{name}; see pipeline/tuning/keras_tuner_patches.py"
            )
    keras_tuner_utils.save_json = save_json_atomically


def forget_unrecorded_trials(oracle) -> None:
    """A search killed between a new trial's two state writes reloads a trial that the oracle neither finished nor
    queues to run, so it would never run. Forgetting it resumes the search as it was saved, before that trial began:
    the oracle then starts that trial afresh."""
    for trial_id in [trial_id for trial_id in oracle.trials if trial_id not in oracle.start_order]:
        del oracle.trials[trial_id]
        shutil.rmtree(oracle._get_trial_dir(trial_id))
