"""The model card, written with each evaluation: what the model was trained on, how well it does, where it fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.reports.html import page, table

# Shown pairs of classes mixed up most often, either way round.
CONFUSED_PAIRS_SHOWN = 5

INTENDED_USE = """
<p>Classifying small greyscale pictures of single fashion items into the ten Fashion-MNIST classes: a
teaching and benchmarking model, and a starting point for sorting product thumbnails.</p>
<ul>
<li>Input: 28x28 greyscale, the item light on a dark background, 0-255 values (the model scales them itself).
<code>fashion-predict</code> converts other pictures by the documented rule: greyscale, upright, the item's
contrast against its modelled background (dark items on light backgrounds become light on black), cropped to the
item so that it fills the frame as in the training images, fitted into 28x28.</li>
<li>Output: a probability for each class; the class names are those of the training data.</li>
</ul>
"""

LIMITS = """
<ul>
<li>The figures above were measured on the Fashion-MNIST test set only: centred, cut-out items on an empty
background. Photos with people, several items, clutter or a different crop are outside what it was checked on;
run the drift stage on such a batch before trusting its answers.</li>
<li>One item per picture, on a background it stands out from: the crop takes everything that differs from the
background, so two items, a hand or clutter end up in one frame, and an item covering every edge is taken for the
background. On test images made into photos (plain, gradient, noisy and shadowed backgrounds, the item filling 30%
to 100% of the width, PNG and JPEG), the default model was right on 87-94% of them against 93.5% on the images as
given; shadows cost most (<code>python bench/predict_real_pictures.py</code>, docs/benchmarks.md).</li>
<li>Its probability is not a measure of whether the picture is a garment at all: the unfamiliarity flag above is.
It flags the share of normal images it was set to, so a few real garments are flagged too, and a picture of
something else that happens to look like a garment at 28x28 is not.</li>
<li>Upper-body garments (Shirt, T-shirt/top, Pullover, Coat) are confused with each other far more than other
classes; see the pairs above before using it where those mistakes matter.</li>
<li>Not for decisions about people.</li>
</ul>
"""


def confused_pairs(matrix: np.ndarray, class_names: tuple[str, ...], count: int) -> list[list]:
    """The `count` pairs of classes mixed up most often, as [pair, total, a taken for b, b taken for a]."""
    rows = []
    for first in range(len(class_names)):
        for second in range(first + 1, len(class_names)):
            as_second, as_first = int(matrix[first, second]), int(matrix[second, first])
            rows.append((as_second + as_first, first, second, as_second, as_first))
    rows.sort(key=lambda row: (-row[0], row[1], row[2]))
    return [
        [
            f"{class_names[first]} / {class_names[second]}",
            total,
            f"{as_second} {class_names[first]} taken for {class_names[second]}",
            f"{as_first} {class_names[second]} taken for {class_names[first]}",
        ]
        for total, first, second, as_second, as_first in rows[:count]
    ]


def data_section(manifest: dict, val_fraction: float, accepted: list[dict]) -> str:
    counts = manifest["counts"]
    new_data = [
        [
            f"accepted batch {entry['batch']}",
            f"source {entry['source']}: {entry['train']:,} training, "
            f"{entry['val']:,} validation, {entry['test']:,} test images (accepted {entry['accepted_at'][:10]})",
        ]
        for entry in accepted
    ]
    rows = [
        ["dataset", manifest["dataset"]],
        ["source", f"{manifest['source']['kind']}: {manifest['source']['location']}"],
        ["checksums", "verified against the published ones" if manifest["verified"] else "not verified (own data)"],
        ["training images", f"{counts['train']:,}, of which {val_fraction:.0%} held out for validation by class"],
        ["test images", f"{counts['test']:,}, used for the figures below only"],
        *new_data,
    ]
    return table(rows, ["property", "value"])


UNFAMILIARITY = """
<p>Each prediction carries an unfamiliarity score: how far the image lies from the training images, read at several
depths of the model: for its embedding and each convolution block's pooled feature maps, the Mahalanobis distance to
the nearest class's mean; and the distance to the nearest of 10,000 training embeddings; each standardised on the
validation images. Above the threshold, <code>fashion-predict</code> flags it (<code>unfamiliar</code>: probably not
a clothing item like the training images) and <code>--unfamiliar skip</code> leaves it out. The threshold was set on
the validation images, none of them seen in training, so that the share below is flagged. On the default model
(<code>python bench/unfamiliarity_methods.py</code>) it flagged 99.7% of handwritten digits, 99.8% of letters, 100%
of random noise and 98.8% of crops of natural photographs (AUROC 0.993 to 1.000), and 12.5% of test images made into
product photos.</p>
"""


SOURCES = """
<p>The original test set, and a fixed test slice of each new source of accepted data (data/pool; see
docs/continuous_training.md). A new model replaces this one through a flow only if it loses no more than the
promotion gate allows on the first and nothing beyond noise on any slice.</p>
"""


SUMMARY_KEYS = ("threshold", "flag_rate", "validation_flagged", "validation_images")


def read_unfamiliarity_summary(path: Path) -> dict:
    """The unfamiliarity stage's summary; an unreadable one is a PipelineError naming the file."""
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise PipelineError(
            f"{path}: unreadable unfamiliarity summary ({' '.join(str(error).split())[:120]})"
        ) from None
    missing = [key for key in SUMMARY_KEYS if not isinstance(summary, dict) or key not in summary]
    if missing:
        raise PipelineError(f"{path}: unfamiliarity summary without {', '.join(missing)}")
    return summary


def unfamiliarity_section(summary: dict, test_share: float) -> str:
    """The unfamiliarity threshold and how often it flags normal images."""
    rows = [
        ["threshold (score above it: flagged)", f"{summary['threshold']:.3f}"],
        ["set to flag, of the validation images", f"{summary['flag_rate']:.1%}"],
        ["validation images flagged", f"{summary['validation_flagged']:.1%} of {summary['validation_images']:,}"],
        ["test images flagged", f"{test_share:.1%}"],
    ]
    return UNFAMILIARITY + table(rows, ["unfamiliarity", "value"])


def render_model_card(
    metrics: dict,
    matrix: np.ndarray,
    class_names: tuple[str, ...],
    data_html: str,
    sources_html: str,
    unfamiliarity_html: str,
    train_params: dict,
    lineage: dict,
) -> str:
    overall = table(
        [["accuracy", f"{metrics['accuracy']:.4f}"], ["macro F1", f"{metrics['macro_f1']:.4f}"]], ["metric", "value"]
    )
    per_class = sorted(metrics["per_class"].items(), key=lambda item: item[1]["f1"])
    per_class_table = table(
        [[name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}"] for name, m in per_class],
        ["class (weakest first)", "precision", "recall", "F1"],
    )
    pairs = table(
        confused_pairs(matrix, class_names, CONFUSED_PAIRS_SHOWN), ["classes", "test images confused", "", ""]
    )
    params = table([[key, str(value)] for key, value in train_params.items()], ["train param", "value"])
    return page(
        "Model card: Fashion-MNIST CNN",
        lineage,
        [
            ("Data", data_html),
            ("Training", params),
            ("Test-set performance", overall + per_class_table),
            ("Accuracy by source of the test images", SOURCES + sources_html),
            ("Classes it confuses most", pairs),
            ("Unfamiliar images", unfamiliarity_html),
            ("Intended use", INTENDED_USE),
            ("Limits", LIMITS),
        ],
    )
