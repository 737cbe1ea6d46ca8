"""The labelling sheet: a drifted batch's images for a person to label, least confident first.

The sheet is a folder a person can drop into data/incoming/ once filled in: one PNG per image and a labels.csv with
the columns fashion-accept reads (`file`, `label`), the `label` column empty, beside the model's guess
(`predicted`, `confidence`) and where the image came from (`source`). The least confident images come first:
labelling from the top teaches the model most per image (uncertainty sampling).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SHEET = "labels.csv"


def safe_file_name(rank: int, name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:60] or "image"
    return f"{rank:05d}_{stem}.png"


def write_labelling_sheet(
    images: np.ndarray, names: list[str], probabilities: np.ndarray, class_names: tuple[str, ...], folder: Path
) -> pd.DataFrame:
    """The images as PNGs in `folder` and labels.csv listing them, least confident prediction first."""
    confidence = probabilities.max(axis=1)
    order = np.argsort(confidence, kind="stable")
    rows = []
    for rank, index in enumerate(order):
        file_name = safe_file_name(rank, names[index])
        # The 28x28 image as the model saw it: labelling what the model is taught, not the original photo.
        Image.fromarray(images[index, :, :, 0]).save(folder / file_name)
        predicted = class_names[int(probabilities[index].argmax())]
        rows.append(
            {
                "file": file_name,
                "label": "",
                "predicted": predicted,
                "confidence": round(float(confidence[index]), 4),
                "source": names[index],
            }
        )
    sheet = pd.DataFrame(rows, columns=["file", "label", "predicted", "confidence", "source"])
    sheet.to_csv(folder / SHEET, index=False)
    return sheet
