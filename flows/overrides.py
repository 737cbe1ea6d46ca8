"""Per-run overrides of params.yaml keys, given as `section.key` names the way `dvc exp run -S` takes them."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from pipeline.errors import PipelineError
from pipeline.files import atomic_path


def parse_assignment(text: str) -> tuple[str, Any]:
    """`train.epochs=20` -> ("train.epochs", 20); the value is read as YAML, so lists and booleans work."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise PipelineError(f"override {text!r} must look like section.key=value")
    return key.strip(), yaml.safe_load(value)


def apply_overrides(document: Any, overrides: Mapping[str, Any], source: Path) -> None:
    """Set each existing `section.key` in the loaded params; an unknown key is an error naming it."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = document
        for depth, part in enumerate(parents):
            node = node.get(part) if isinstance(node, Mapping) else None
            if not isinstance(node, Mapping):
                raise PipelineError(f"{source}: cannot override {dotted}: no section {'.'.join(parents[: depth + 1])}")
        if leaf not in node:
            raise PipelineError(f"{source}: cannot override {dotted}: no such key")
        node[leaf] = value


@contextmanager
def overridden_params(path: Path, overrides: Mapping[str, Any]) -> Iterator[None]:
    """params.yaml with the overrides applied for the duration of the block, then its exact original text back.

    The file is edited round-trip (comments and layout kept) because DVC experiments record it as it is.
    """
    if not overrides:
        yield
        return
    original = path.read_text()
    yaml_round_trip = YAML()
    document = yaml_round_trip.load(original)
    apply_overrides(document, overrides, path)
    buffer = io.StringIO()
    yaml_round_trip.dump(document, buffer)
    with atomic_path(path) as temporary:
        temporary.write_text(buffer.getvalue())
    try:
        yield
    finally:
        with atomic_path(path) as temporary:
            temporary.write_text(original)
