"""Round-trip edits of params.yaml: values replaced in place, comments and layout kept (DVC and people read it)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from pipeline.errors import PipelineError


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
        node[leaf] = _like(node[leaf], value)


def edited_text(path: Path, overrides: Mapping[str, Any], line_comments: Mapping[str, str] | None = None) -> str:
    """The text of params.yaml with the overrides applied, everything else as it was; each `section.key` of
    `line_comments` gets that text as its end-of-line comment instead of the one it had."""
    yaml_round_trip = round_trip_yaml()
    document = yaml_round_trip.load(Path(path).read_text())
    apply_overrides(document, overrides, path)
    for dotted, text in (line_comments or {}).items():
        *parents, leaf = dotted.split(".")
        node = document
        for part in parents:
            node = node[part]
        replace_line_comment(node, leaf, text)
    buffer = io.StringIO()
    yaml_round_trip.dump(document, buffer)
    return buffer.getvalue()


def replace_line_comment(mapping: CommentedMap, key: str, text: str) -> None:
    """Set the comment at the end of `key`'s line. ruamel keeps the comment lines that follow a key (the next
    key's own block) in the same token as its end-of-line comment; those stay."""
    token = mapping.ca.items.get(key, [None, None, None, None])[2]
    if token is None:
        mapping.yaml_add_eol_comment(f"# {text}", key)
        return
    if token.value.startswith("#"):  # the line had a comment: the rest of the token follows it
        following = token.value.split("\n", 1)[1]
    else:  # only the following lines
        following = token.value.lstrip(" ").removeprefix("\n")
    token.value = f"# {text}\n{following}"


def round_trip_yaml() -> YAML:
    """ruamel's round trip, set to write what params.yaml is written in: nested lists indented under their key,
    and `null` spelled out (ruamel's default leaves an empty value)."""
    yaml_round_trip = YAML()
    yaml_round_trip.indent(mapping=2, sequence=4, offset=2)
    yaml_round_trip.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    yaml_round_trip.representer.add_representer(float, _represent_float)
    return yaml_round_trip


def _represent_float(representer, value: float):
    """Floats as YAML 1.1 readers (DVC's, PyYAML) read them back as floats: ruamel writes 1e-7 as `1e-07`, which
    they take for a string, since YAML 1.1 wants a dot in the mantissa (`1.0e-07`)."""
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        return representer.represent_scalar("tag:yaml.org,2002:float", f"{mantissa}.0e{exponent}")
    return representer.represent_float(value)


def _like(old: Any, new: Any) -> Any:
    """A new list keeps the old one's inline `[a, b]` style."""
    if isinstance(new, list) and isinstance(old, CommentedSeq) and old.fa.flow_style():
        sequence = CommentedSeq(new)
        sequence.fa.set_flow_style()
        return sequence
    return new
