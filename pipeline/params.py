"""params.yaml, loaded one section at a time into a frozen dataclass that checks every value.

Each section's schema lives beside the code that uses it: a dataclass whose fields say how to read them,
    @dataclass(frozen=True)
    class PreprocessParams:
        SECTION: ClassVar[str] = "preprocess"
        val_fraction: float = param("number", above=0, below=1)
and `load_params(PreprocessParams)` reads, checks and builds it. A bad value fails before any work starts,
naming the file, the key and the value:
    params.yaml: preprocess.val_fraction must be > 0 and < 1, got 1.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import PipelineError

PARAMS_FILE = Path("params.yaml")
Params = TypeVar("Params")


class ParamsError(PipelineError):
    pass


def read_section(section: str, path: Path = PARAMS_FILE) -> dict[str, Any]:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(document, dict) or not isinstance(document.get(section), dict):
        raise ParamsError(f"{path}: section {section!r} is missing or not a mapping")
    return document[section]


def param(read: str | Callable[[SectionReader, str], Any], **options: Any) -> Any:
    """A dataclass field read by `SectionReader.<read>(key, **options)`, or by `read(reader, key)` when callable."""
    return dataclasses.field(metadata={"read": read, "options": options})


def load_params(schema: type[Params], path: Path = PARAMS_FILE, raw: dict[str, Any] | None = None) -> Params:
    """The section `schema.SECTION` of params.yaml (or `raw`, a section already read) as a checked `schema`.

    Every field is read by the rule its `param(...)` gives, in the order the schema declares them; then a key the
    schema does not know is an error, and so is anything the schema's `check(reader)` method, if it has one, rejects
    (rules between keys, checked once every key has been read).
    """
    section = schema.SECTION
    reader = SectionReader(section, read_section(section, path) if raw is None else raw, Path(path))
    values = {}
    for field in dataclasses.fields(schema):
        if "read" not in field.metadata:
            raise TypeError(f"{schema.__name__}.{field.name} must be declared with param(...)")
        read, options = field.metadata["read"], field.metadata["options"]
        values[field.name] = (
            read(reader, field.name) if callable(read) else getattr(reader, read)(field.name, **options)
        )
    reader.finish()
    params = schema(**values)
    if hasattr(params, "check"):
        params.check(reader)
    return params


class SectionReader:
    """Typed access to one section; every complaint names `file: section.key`."""

    def __init__(self, section: str, raw: dict[str, Any], path: Path):
        self.section, self.raw, self.path = section, raw, path
        self.read: set[str] = set()

    def fail(self, key: str, problem: str, value: Any) -> ParamsError:
        return ParamsError(f"{self.path}: {self.section}.{key} {problem}, got {value!r}")

    def value(self, key: str, kind: type | tuple[type, ...], description: str, optional: bool = False) -> Any:
        self.read.add(key)
        if key not in self.raw:
            raise ParamsError(f"{self.path}: {self.section}.{key} is missing")
        value = self.raw[key]
        if value is None and optional:
            return None
        # bool is an int subclass in Python; a `true` where a number belongs is a mistake.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise self.fail(key, f"must be {description}", value)
        return value

    def text(self, key: str, description: str, optional: bool = False) -> str | None:
        return self.value(key, str, description, optional=optional)

    def number(
        self,
        key: str,
        *,
        integer: bool = False,
        minimum: float | None = None,
        above: float | None = None,
        below: float | None = None,
        optional: bool = False,
    ) -> Any:
        """A number within the given bounds; with `optional`, null is allowed too (and returned as None)."""
        kind = int if integer else (int, float)
        or_null = " or null" if optional else ""
        value = self.value(key, kind, ("an integer" if integer else "a number") + or_null, optional=optional)
        if value is None:
            return None
        rules = [
            f">= {minimum}" if minimum is not None else "",
            f"> {above}" if above is not None else "",
            f"< {below}" if below is not None else "",
        ]
        if (
            (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (below is not None and value >= below)
        ):
            raise self.fail(key, "must be " + " and ".join(rule for rule in rules if rule) + or_null, value)
        return value

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.value(key, str, f"one of {', '.join(options)}")
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}", value)
        return value

    def flag(self, key: str) -> bool:
        return self.value(key, bool, "true or false")

    def positive_ints(self, key: str) -> tuple[int, ...]:
        values = self.value(key, list, "a non-empty list of positive integers")
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise self.fail(key, "must be a non-empty list of positive integers", values)
        return tuple(values)

    def string_map(self, key: str, item_kind: type, description: str) -> dict[str, Any]:
        mapping = self.value(key, dict, "a mapping")
        for name, item in mapping.items():
            if not isinstance(name, str) or not isinstance(item, item_kind):
                raise self.fail(f"{key}.{name}", f"must be {description}", item)
        return mapping

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.read)
        if unknown:
            raise ParamsError(f"{self.path}: {self.section}.{unknown[0]} is not a known key")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
