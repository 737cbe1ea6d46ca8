"""unfamiliarity: what the model's views of its training images look like (its embedding and each convolution block's
pooled feature maps), and the score above which an image counts as unfamiliar, set on the validation split so that
`unfamiliarity.flag_rate` of normal images is flagged.

Written beside the model (models/unfamiliarity.npz); predict flags each image against it and the model card states
it (pipeline/model/unfamiliarity.py says how the score is computed, bench/unfamiliarity_methods.py why).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.cli import run_command
from pipeline.data.preprocessing import load_prepared
from pipeline.files import atomic_path
from pipeline.model.network import load_model
from pipeline.model.unfamiliarity import UnfamiliarityParams, file_md5, fit, save, scores, standardised
from pipeline.model.views import with_unfamiliarity_views
from pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
        parser.add_argument("--train", required=True, type=Path, help="prepared training split (.npz)")
        parser.add_argument("--val", required=True, type=Path, help="prepared validation split (.npz)")
        parser.add_argument("--out", required=True, type=Path, help="output: the scorer and its threshold (.npz)")
        parser.add_argument("--summary", required=True, type=Path, help="output: the threshold and rates (.json)")

    def work(arguments):
        params = load_params(UnfamiliarityParams, arguments.params)
        views_model = with_unfamiliarity_views(load_model(arguments.model))

        def views(images: np.ndarray) -> list[np.ndarray]:
            return views_model.predict(images, batch_size=params.batch_size, verbose=0)[1:]

        train_images, train_labels = load_prepared(arguments.train)
        val_images, _ = load_prepared(arguments.val)
        scorer = fit(views(train_images), train_labels, params)
        val_views = views(val_images)
        scorer = replace(standardised(scorer, val_views, params.flag_rate), model_md5=file_md5(arguments.model))
        val_scores = scores(scorer, val_views)
        summary = {
            "flag_rate": params.flag_rate,
            "threshold": round(scorer.threshold, 6),
            "validation_images": len(val_images),
            "validation_flagged": round(float((val_scores > scorer.threshold).mean()), 6),
        }
        with atomic_path(arguments.out) as staging, atomic_path(arguments.summary) as summary_file:
            save(scorer, staging)
            summary_file.write_text(json.dumps(summary, indent=2) + "\n")
        print(
            f"unfamiliarity: threshold {scorer.threshold:.3f} flags {summary['validation_flagged']:.1%} of "
            f"{len(val_images):,} validation images"
        )

    run_command("unfamiliarity", configure, work, argv)


if __name__ == "__main__":
    main()
