"""drift_reference: for each source of the reference split (the original images, and each accepted source), the
drift features of its images and the null distribution its verdict's threshold comes from (pipeline/drift/
stat_tests.py), and the source classifier that estimates a batch's mix of sources (pipeline/drift/sources.py).
Computed once per model, so a promotion recomputes them from the new model's features; cached by DVC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.cli import run_command
from pipeline.data.pool import POOL_RECORD, read_pool_record
from pipeline.data.preprocessing import load_prepared
from pipeline.data.sources import split_sources
from pipeline.drift.features import image_features
from pipeline.drift.params import DriftParams
from pipeline.drift.references import build_references, save_references
from pipeline.drift.stat_tests import CALIBRATION_SIZES
from pipeline.files import atomic_path
from pipeline.model.network import load_model
from pipeline.params import load_params

SAMPLE_IMAGES = 64  # reference images per source shown beside a batch's on the drift page
# The null is simulated from batches of at most half a reference, the smallest of 10 images (stat_tests.py).
MINIMUM_IMAGES = 2 * CALIBRATION_SIZES[0]


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
        parser.add_argument("--prepared", required=True, type=Path, help="the prepared splits' folder")
        parser.add_argument("--out", required=True, type=Path, help="output: the references' folder")

    def work(arguments):
        params = load_params(DriftParams, arguments.params)
        images, _ = load_prepared(arguments.prepared / f"{params.reference}.npz")
        sources = split_sources(read_pool_record(arguments.prepared / POOL_RECORD), params.reference, len(images))
        model = load_model(arguments.model)
        rng = np.random.default_rng(params.seed)
        features = {}
        for source in dict.fromkeys(sources):  # in order of first appearance: the original images first
            own = images[sources == source]
            if len(own) < MINIMUM_IMAGES:
                print(
                    f"drift_reference: {source} has {len(own)} {params.reference} images, fewer than the "
                    f"{MINIMUM_IMAGES} a reference of its own needs; its batches are judged against the others"
                )
                continue
            features[source] = image_features(model, own, params.batch_size)
            shown = rng.choice(len(own), min(SAMPLE_IMAGES, len(own)), replace=False)
            features[source].sample_images = own[np.sort(shown)]
        classes = next(iter(features.values())).probabilities.shape[1]
        references, classifier = build_references(
            features, classes, params.embedding_components, params.calibration_resamples, params.seed
        )
        with atomic_path(arguments.out) as staging:
            save_references(staging, features, references, classifier, params.reference)
        counts = ", ".join(f"{source} {len(feature.probabilities)}" for source, feature in features.items())
        print(
            f"drift_reference: features of the {params.reference} images by source ({counts}); each source's null "
            f"from {params.calibration_resamples} clean resamples at up to {len(references[0].null_sizes)} batch sizes"
        )

    run_command("drift_reference", configure, work, argv)


if __name__ == "__main__":
    main()
