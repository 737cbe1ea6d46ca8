"""Per-run overrides of params.yaml keys, given as `section.key` names the way `dvc exp run -S` takes them."""

from __future__ import annotations

import re
from typing import Any

import yaml

from pipeline.errors import PipelineError


def parse_assignment(text: str) -> tuple[str, Any]:
    """`train.epochs=20` -> ("train.epochs", 20); the value is read as YAML, so lists and booleans work."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise PipelineError(f"override {text!r} must look like section.key=value")
    parsed = yaml.safe_load(value)
    # YAML 1.1 reads `1e-7` (no dot in the mantissa) as a string; a person typing it means a number.
    if isinstance(parsed, str) and EXPONENT_NUMBER.fullmatch(parsed.strip()):
        parsed = float(parsed)
    return key.strip(), parsed


EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
