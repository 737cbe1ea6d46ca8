"""drift_reference: the drift features of the reference images, and the null distribution the verdict's threshold
comes from (pipeline/drift/stat_tests.py), computed once per model and cached by DVC."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.cli import run_command
from pipeline.data.preprocessing import load_prepared
from pipeline.drift.features import fit_components, image_features, save_features
from pipeline.drift.params import DriftParams
from pipeline.drift.stat_tests import calibrate, feature_matrix, save_null
from pipeline.files import atomic_path
from pipeline.model.network import load_model
from pipeline.params import load_params

SAMPLE_IMAGES = 64  # reference images shown beside a batch's on the drift page


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
        parser.add_argument("--prepared", required=True, type=Path, help="the prepared splits' folder")
        parser.add_argument("--out", required=True, type=Path, help="output: the reference features (.npz)")
        parser.add_argument("--calibration", required=True, type=Path, help="output: the verdict's null (.npz)")

    def work(arguments):
        params = load_params(DriftParams, arguments.params)
        images, _ = load_prepared(arguments.prepared / f"{params.reference}.npz")
        features = image_features(load_model(arguments.model), images, params.batch_size)
        rng = np.random.default_rng(params.seed)
        features.sample_images = images[np.sort(rng.choice(len(images), SAMPLE_IMAGES, replace=False))]
        components = fit_components(features.embeddings, params.embedding_components, params.seed)
        classes = features.probabilities.shape[1]
        # Column names do not matter to the null: only the values are resampled.
        matrix = feature_matrix(features, components, tuple(str(index) for index in range(classes)))
        calibration = calibrate(matrix, classes, params.calibration_resamples, params.seed)
        with atomic_path(arguments.out) as staging, atomic_path(arguments.calibration) as calibration_file:
            save_features(staging, features)
            save_null(calibration_file, calibration)
        print(
            f"drift_reference: features of {len(images)} {params.reference} images; the verdict's null from "
            f"{params.calibration_resamples} clean resamples at {len(calibration.null_sizes)} batch sizes"
        )

    run_command("drift_reference", configure, work, argv)


if __name__ == "__main__":
    main()
