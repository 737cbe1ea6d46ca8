"""Per-run overrides of params.yaml keys, given as `section.key` names the way `dvc exp run -S` takes them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.params_edit import edited_text


def parse_assignment(text: str) -> tuple[str, Any]:
    """`train.epochs=20` -> ("train.epochs", 20); the value is read as YAML, so lists and booleans work."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise PipelineError(f"override {text!r} must look like section.key=value")
    return key.strip(), yaml.safe_load(value)


@contextmanager
def overridden_params(path: Path, overrides: Mapping[str, Any]) -> Iterator[None]:
    """params.yaml with the overrides applied for the duration of the block, then its exact original text back.

    The file is edited round-trip (comments and layout kept) because DVC experiments record it as it is.
    """
    if not overrides:
        yield
        return
    original = path.read_text()
    edited = edited_text(path, overrides)
    with atomic_path(path) as temporary:
        temporary.write_text(edited)
    try:
        yield
    finally:
        with atomic_path(path) as temporary:
            temporary.write_text(original)
