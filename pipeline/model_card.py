"""The model card, written with each evaluation: what the model was trained on, how well it does, where it fails."""

from __future__ import annotations

import numpy as np

from pipeline.report import page, table

# Shown pairs of classes mixed up most often, either way round.
CONFUSED_PAIRS_SHOWN = 5

INTENDED_USE = """
<p>Classifying small greyscale pictures of single fashion items into the ten Fashion-MNIST classes: a
teaching and benchmarking model, and a starting point for sorting product thumbnails.</p>
<ul>
<li>Input: 28x28 greyscale, the item light on a dark background, 0-255 values (the model scales them itself).
<code>fashion-predict</code> converts other pictures by the documented rule: greyscale, fitted into 28x28 on
its border colour, inverted when the background is light.</li>
<li>Output: a probability for each class; the class names are those of the training data.</li>
</ul>
"""

LIMITS = """
<ul>
<li>The figures above were measured on the Fashion-MNIST test set only: centred, cut-out items on an empty
background. Photos with people, several items, clutter or a different crop are outside what it was checked on;
run the drift stage on such a batch before trusting its answers.</li>
<li>Pictures should be cropped close to the item, as the training images are: the same test images as product
photos with a margin of an eighth of their width on each side agreed with the model's answers on the originals
only about 80% of the time (95% when cropped).</li>
<li>It always answers with one of the ten classes, also for pictures of none of them; its probability is not a
measure of whether the picture is a garment at all.</li>
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


def data_section(manifest: dict, val_fraction: float) -> str:
    counts = manifest["counts"]
    rows = [
        ["dataset", manifest["dataset"]],
        ["source", f"{manifest['source']['kind']}: {manifest['source']['location']}"],
        ["checksums", "verified against the published ones" if manifest["verified"] else "not verified (own data)"],
        ["training images", f"{counts['train']:,}, of which {val_fraction:.0%} held out for validation by class"],
        ["test images", f"{counts['test']:,}, used for the figures below only"],
    ]
    return table(rows, ["property", "value"])


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
            ("Classes it confuses most", pairs),
            ("Unfamiliar images", unfamiliarity_html),
            ("Intended use", INTENDED_USE),
            ("Limits", LIMITS),
        ],
    )
