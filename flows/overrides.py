"""Per-run overrides of params.yaml keys, given as `section.key` names the way `dvc exp run -S` takes them."""

from __future__ import annotations

from typing import Any

import yaml

from pipeline.errors import PipelineError


def parse_assignment(text: str) -> tuple[str, Any]:
    """`train.epochs=20` -> ("train.epochs", 20); the value is read as YAML, so lists and booleans work."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise PipelineError(f"override {text!r} must look like section.key=value")
    return key.strip(), yaml.safe_load(value)
