"""The live section of params.yaml: what is sent to labelling, and when the model is called worse live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pipeline.params import SectionReader, param


@dataclass(frozen=True)
class LiveParams:
    SECTION: ClassVar[str] = "live"
    sample_rate: float = param("number", above=0)
    sample_per_day: int = param("number", integer=True, minimum=1)
    unfamiliar_per_day: int = param("number", integer=True, minimum=0)
    least_confident_per_day: int = param("number", integer=True, minimum=0)
    seed: int = param("number", integer=True, minimum=0)
    margin: float = param("number", minimum=0, below=1)
    alpha: float = param("number", above=0, below=1)
    detect_drop: float = param("number", above=0, below=1)
    power: float = param("number", above=0, below=1)
    window_days: int = param("number", integer=True, minimum=1)
    labels_file: str = param("text", description="a path")
    sheets_folder: str = param("text", description="a path")

    def check(self, reader: SectionReader) -> None:
        if self.sample_rate > 1:
            raise reader.fail("sample_rate", "must be > 0 and <= 1 (a share of the pictures)", self.sample_rate)
        if self.detect_drop <= self.margin:
            raise reader.fail("detect_drop", f"must be above margin ({self.margin})", self.detect_drop)
