"""The drift section of params.yaml, read by the drift_reference and drift stages and the drift-monitor flow.

Apart from the comparison (pipeline/drift/check.py), so that computing the reference features does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pipeline.drift.shifts import SCENARIOS
from pipeline.params import param
from pipeline.pictures.options import INVERT_CHOICES


@dataclass(frozen=True)
class DriftParams:
    SECTION: ClassVar[str] = "drift"
    current_batch: str = param("text", description="a path")
    current_source: str | None = param("text", description="a source's name", optional=True)
    reference: str = param("choice", options=("val", "train"))
    invert: str = param("choice", options=INVERT_CHOICES)
    crop: bool = param("flag")
    scenario: str = param("choice", options=("none", *SCENARIOS))
    strength: float | None = param("number", minimum=0, optional=True)
    seed: int = param("number", integer=True, minimum=0)
    alpha: float = param("number", above=0, below=1)
    effect_floor: float = param("number", minimum=0, below=1)
    min_batch: int = param("number", integer=True, minimum=10)
    calibration_resamples: int = param("number", integer=True, minimum=100)
    embedding_components: int = param("number", integer=True, minimum=1)
    batch_size: int = param("number", integer=True, minimum=1)
    window_days: int = param("number", integer=True, minimum=1)
    retrain_after: int = param("number", integer=True, minimum=1)
    retrain_on_drift: bool = param("flag")
