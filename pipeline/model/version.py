"""The name of a model in use: the checksums of its two files, as dvc.lock records them.

    model-<md5 of model.keras, 12 digits>+scorer-<md5 of unfamiliarity.npz, 12 digits>

fashion-serve answers with it and keeps it with each captured picture; live accuracy measures each version apart.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.model.unfamiliarity import file_md5

SHOWN_DIGITS = 12  # of each md5 in a version: enough to tell versions apart, and to find them in dvc.lock


def version_of(model_md5: str, scorer_md5: str) -> str:
    return f"model-{model_md5[:SHOWN_DIGITS]}+scorer-{scorer_md5[:SHOWN_DIGITS]}"


def version_of_files(model: Path, scorer: Path) -> str:
    return version_of(file_md5(model), file_md5(scorer))


def model_of(version: str) -> str:
    """The model's part of a version (`model-<md5>`): what its answers depend on; the scorer only flags them."""
    return version.split("+", 1)[0]
