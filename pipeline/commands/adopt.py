"""adopt: write the tune stage's best hyperparameters into params.yaml's train section.

params.yaml stays the one source of truth: after adopting, `dvc repro` retrains and re-evaluates with the new values,
and `dvc params diff` shows what changed. Only the keys in the best-params file change; comments stay.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import run_command
from pipeline.tuning.adoption import adopt_best_params


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument(
            "--best", type=Path, default=Path("reports/tune/best_params.yaml"), help="default: %(default)s"
        )

    def work(arguments):
        changes = adopt_best_params(arguments.best, arguments.params)
        for key, (old, new) in changes.items():
            print(f"adopt: train.{key}: {old} -> {new}")
        print(f"adopt: {len(changes)} train params changed in {arguments.params}; `dvc repro` retrains with them")

    run_command("adopt", configure, work, argv)


if __name__ == "__main__":
    main()
