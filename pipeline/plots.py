"""The pictures of the reports, drawn with matplotlib into PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def headless_pyplot():
    """matplotlib.pyplot drawing into files only, on any machine (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_sample_pictures(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], out_dir: Path) -> None:
    """The tutorial's two pictures: one image with a colour bar, and a 5x5 grid labelled with class names."""
    plt = headless_pyplot()
    figure, axis = plt.subplots(figsize=(4, 4))
    shown = axis.imshow(images[0, :, :, 0], cmap="gray")
    figure.colorbar(shown, ax=axis)
    axis.set_title(class_names[labels[0]])
    figure.savefig(out_dir / "sample_image.png", dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(5, 5, figsize=(8, 8))
    for index, axis in enumerate(axes.flat):
        axis.imshow(images[index, :, :, 0], cmap="binary")
        axis.set_xlabel(class_names[labels[index]])
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(out_dir / "sample_grid.png", dpi=100)
    plt.close(figure)


def save_learning_curve(history: pd.DataFrame, path: Path) -> None:
    """The tutorial's learning curve (train vs validation loss), with accuracy beside it."""
    plt = headless_pyplot()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.plot(history["epoch"], history[metric], marker="o", markersize=3, label=f"train {metric}")
        axis.plot(history["epoch"], history[f"val_{metric}"], marker="o", markersize=3, label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    loss_axis.set_title("Learning curve: loss")
    accuracy_axis.set_title("Learning curve: accuracy")
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def save_confusion_matrix(matrix: np.ndarray, class_names: tuple[str, ...], path: Path) -> None:
    """Counts and row-normalised rates (recall on the diagonal), side by side, with class names."""
    plt = headless_pyplot()
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(1, 2, figsize=(17, 7.5))
    for axis, values, title, text in (
        (axes[0], matrix, "Confusion matrix (counts)", lambda v: f"{int(v)}"),
        (axes[1], normalised, "Confusion matrix (share of each true class)", lambda v: f"{v:.2f}"),
    ):
        axis.imshow(values, cmap="Blues")
        for row in range(len(class_names)):
            for column in range(len(class_names)):
                value = values[row, column]
                colour = "white" if value > values.max() / 2 else "black"
                axis.text(column, row, text(value), ha="center", va="center", color=colour, fontsize=8)
        axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
        axis.set_yticks(range(len(class_names)), class_names)
        axis.set_xlabel("predicted class")
        axis.set_ylabel("true class")
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def save_gallery(images: np.ndarray, captions: list[str], path: Path, columns: int = 8) -> None:
    """A grid of images with a caption under each."""
    plt = headless_pyplot()
    rows = max(1, int(np.ceil(len(images) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.4 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].squeeze(), cmap="binary")
            axis.set_title(captions[index], fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
