"""The labelling sheet: a drifted batch's images for a person to label, least confident first.

The sheet is a folder a person can drop into data/incoming/ once filled in: one PNG per image and a labels.csv with
the columns fashion-accept reads (`file`, `label`), the `label` column empty, beside the model's guess
(`predicted`, `confidence`) and where the image came from (`source`). The least confident images come first:
labelling from the top teaches the model most per image (uncertainty sampling).

For pictures the prediction service captured, the sheet also offers what a person needs to recognise the item: the
service's thumbnail of the whole picture (`thumbnail`, a file under thumbnails/, which fashion-accept does not read)
and the name it was uploaded under (`uploaded_as`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SHEET = "labels.csv"
THUMBNAILS = "thumbnails"


@dataclass(frozen=True)
class Captured:
    """What the prediction service kept of a picture besides the image: its thumbnail (PNG) and uploaded name."""

    thumbnail: bytes
    uploaded_as: str


def safe_file_name(rank: int, name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:60] or "image"
    return f"{rank:05d}_{stem}.png"


def write_labelling_sheet(
    images: np.ndarray,
    names: list[str],
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    folder: Path,
    captured: dict[str, Captured] | None = None,
    blind: bool = False,
) -> pd.DataFrame:
    """The images as PNGs in `folder` and labels.csv listing them, least confident prediction first (`blind`: in the
    order given, without the model's answer); with each captured picture's thumbnail (`captured`, by image name) when
    the service kept one."""
    captured = captured or {}
    confidence = probabilities.max(axis=1)
    order = np.arange(len(images)) if blind else np.argsort(confidence, kind="stable")
    rows = []
    for rank, index in enumerate(order):
        file_name = safe_file_name(rank, names[index])
        # The 28x28 image as the model saw it: labelling what the model is taught, not the original photo.
        Image.fromarray(images[index, :, :, 0]).save(folder / file_name)
        predicted = class_names[int(probabilities[index].argmax())]
        kept = captured.get(names[index])
        thumbnail = ""
        if kept is not None:
            thumbnail = f"{THUMBNAILS}/{file_name}"
            (folder / THUMBNAILS).mkdir(exist_ok=True)
            (folder / thumbnail).write_bytes(kept.thumbnail)
        rows.append(
            {
                "file": file_name,
                "label": "",
                "predicted": predicted,
                "confidence": round(float(confidence[index]), 4),
                "source": names[index],
                "thumbnail": thumbnail,
                "uploaded_as": kept.uploaded_as if kept is not None else "",
            }
        )
    columns = ["file", "label", "predicted", "confidence", "source", "thumbnail", "uploaded_as"]
    if blind:
        columns = [column for column in columns if column not in ("predicted", "confidence")]
    sheet = pd.DataFrame(rows, columns=columns)
    sheet.to_csv(folder / SHEET, index=False)
    return sheet
