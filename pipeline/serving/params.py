"""The serve section of params.yaml: where the service listens, how it batches, what it accepts and what it keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pipeline.params import SectionReader, param
from pipeline.pictures.options import INVERT_CHOICES


@dataclass(frozen=True)
class ServeParams:
    SECTION: ClassVar[str] = "serve"
    host: str = param("text", description="an address to bind to")
    port: int = param("number", integer=True, minimum=1, below=65536)
    max_batch: int = param("number", integer=True, minimum=1)
    max_wait_ms: float = param("number", minimum=0)
    decode_threads: int = param("number", integer=True, minimum=1)
    inline_decode_pixels: int = param("number", integer=True, minimum=0)
    max_upload_bytes: int = param("number", integer=True, minimum=1)
    max_files: int = param("number", integer=True, minimum=1)
    max_pixels: int = param("number", integer=True, minimum=1)
    invert: str = param("choice", options=INVERT_CHOICES)
    crop: bool = param("flag")
    reload_seconds: float = param("number", above=0)
    capture: bool = param("flag")
    capture_folder: str = param("text", description="a path")
    capture_per_day: int = param("number", integer=True, minimum=1)
    capture_total: int = param("number", integer=True, minimum=1)
    capture_chunk: int = param("number", integer=True, minimum=1)
    capture_flush_seconds: float = param("number", above=0)

    def check(self, reader: SectionReader) -> None:
        if self.capture_per_day > self.capture_total:
            raise reader.fail(
                "capture_per_day", f"must be at most capture_total ({self.capture_total})", self.capture_per_day
            )
