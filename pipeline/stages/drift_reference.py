"""drift_reference: the drift features of the reference images, computed once per model and cached by DVC."""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import run_command
from pipeline.drift_features import image_features, save_features
from pipeline.drift_params import DriftParams
from pipeline.files import atomic_path
from pipeline.model import load_model
from pipeline.params import load_params
from pipeline.prepared import load_prepared


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
        parser.add_argument("--prepared", required=True, type=Path, help="the prepared splits' folder")
        parser.add_argument("--out", required=True, type=Path, help="output: the reference features (.npz)")

    def work(arguments):
        params = load_params(DriftParams, arguments.params)
        images, _ = load_prepared(arguments.prepared / f"{params.reference}.npz")
        features = image_features(load_model(arguments.model), images, params.batch_size)
        with atomic_path(arguments.out) as staging:
            save_features(staging, features)
        print(f"drift_reference: features of {len(images)} {params.reference} images")

    run_command("drift_reference", configure, work, argv)


if __name__ == "__main__":
    main()
