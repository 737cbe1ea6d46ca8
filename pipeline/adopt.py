"""adopt: write the tune stage's best hyperparameters into params.yaml's train section.

params.yaml stays the one source of truth: after adopting, `dvc repro` retrains and re-evaluates with the new values,
and `dvc params diff` shows what changed. Only the keys in the best-params file change; comments stay.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.cli import run_stage
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.params import TrainParams, read_section
from pipeline.params_edit import edited_text


def read_best(path: Path) -> dict:
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the tune stage first: dvc repro tuning/dvc.yaml)")
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or not isinstance(document.get("train"), dict) or not document["train"]:
        raise PipelineError(f"{path}: expected a non-empty 'train' mapping of hyperparameters")
    return document["train"]


def adopt(best_file: Path, params_file: Path) -> dict[str, tuple]:
    """Edit params.yaml in place; returns each changed key with its (old, new) values."""
    best = read_best(best_file)
    current = read_section("train", params_file)
    text = edited_text(params_file, {f"train.{key}": value for key, value in best.items()})
    # The whole section must still load before anything is written.
    TrainParams.from_mapping(yaml.safe_load(text)["train"], params_file)
    with atomic_path(params_file) as staging:
        staging.write_text(text)
    return {key: (current[key], value) for key, value in best.items() if current[key] != value}


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument(
            "--best", type=Path, default=Path("reports/tune/best_params.yaml"), help="default: %(default)s"
        )

    def work(arguments):
        changes = adopt(arguments.best, Path(arguments.params))
        for key, (old, new) in changes.items():
            print(f"adopt: train.{key}: {old} -> {new}")
        print(f"adopt: {len(changes)} train params changed in {arguments.params}; `dvc repro` retrains with them")

    run_stage("adopt", configure, work, argv)


if __name__ == "__main__":
    main()
