"""Adopting a search's best configuration: best_params.yaml's train values written into params.yaml. Comments on
lines of their own stay; a changed key's end-of-line comment says where its value came from."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.model.training import TrainParams
from pipeline.params import load_params, read_section
from pipeline.params_edit import edited_text


def read_best(path: Path) -> dict:
    """The train values of a best_params.yaml."""
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the tune stage first: dvc repro tuning/dvc.yaml)")
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or not isinstance(document.get("train"), dict) or not document["train"]:
        raise PipelineError(f"{path}: expected a non-empty 'train' mapping of hyperparameters")
    return document["train"]


def adopt_best_params(best_file: Path, params_file: Path) -> dict[str, tuple]:
    """Edit params.yaml in place; returns each changed key with its (old, new) values."""
    best = read_best(best_file)
    current = read_section("train", params_file)
    changed = {key: value for key, value in best.items() if current.get(key) != value}
    # A changed key's end-of-line comment spoke of the value it had (params.yaml keeps what a key does in the
    # comment lines above it): it now says where the value came from.
    text = edited_text(
        params_file,
        {f"train.{key}": value for key, value in best.items()},
        {f"train.{key}": f"adopted from {best_file}" for key in changed},
    )
    # The whole section must still load before anything is written.
    load_params(TrainParams, params_file, raw=yaml.safe_load(text)["train"])
    with atomic_path(params_file) as staging:
        staging.write_text(text)
    return {key: (current[key], value) for key, value in changed.items()}
