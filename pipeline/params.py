"""params.yaml, loaded one section at a time into frozen dataclasses that check every value.

A bad value fails before any work starts, naming the file, the key and the value:
    params.yaml: preprocess.val_fraction must be > 0 and < 1, got 1.5
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError

PARAMS_FILE = Path("params.yaml")


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


@dataclass(frozen=True)
class IngestParams:
    dataset: str
    source_dir: str | None
    system_dirs: dict[str, str]
    mirrors: dict[str, list[str]]
    download_timeout_seconds: float
    download_attempts: int

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> IngestParams:
        reader = SectionReader("ingest", read_section("ingest", path), path)
        params = cls(
            dataset=reader.value("dataset", str, "a dataset name"),
            source_dir=reader.value("source_dir", str, "a directory path or null", optional=True),
            system_dirs=reader.string_map("system_dirs", str, "a directory path"),
            mirrors=reader.string_map("mirrors", list, "a list of base URLs"),
            download_timeout_seconds=reader.number("download_timeout_seconds", above=0),
            download_attempts=reader.number("download_attempts", integer=True, minimum=1),
        )
        reader.finish()
        return params


@dataclass(frozen=True)
class ValidateParams:
    expected_rows: dict[str, int]
    class_share_tolerance: float
    max_test_duplicates_in_train: float

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> ValidateParams:
        reader = SectionReader("validate", read_section("validate", path), path)
        expected_rows = reader.string_map("expected_rows", int, "a positive row count")
        for split in ("train", "test"):
            if expected_rows.get(split, 0) <= 0:
                raise reader.fail(f"expected_rows.{split}", "must be a positive row count", expected_rows.get(split))
        params = cls(
            expected_rows=expected_rows,
            class_share_tolerance=reader.number("class_share_tolerance", above=0, below=1),
            max_test_duplicates_in_train=reader.number("max_test_duplicates_in_train", minimum=0, below=1),
        )
        reader.finish()
        return params


@dataclass(frozen=True)
class PreprocessParams:
    val_fraction: float
    seed: int

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> PreprocessParams:
        reader = SectionReader("preprocess", read_section("preprocess", path), path)
        params = cls(
            val_fraction=reader.number("val_fraction", above=0, below=1),
            seed=reader.number("seed", integer=True, minimum=0),
        )
        reader.finish()
        return params


ACTIVATIONS = ("relu", "elu", "gelu", "selu", "swish", "tanh", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


@dataclass(frozen=True)
class TrainParams:
    seed: int
    conv_filters: tuple[int, ...]
    convs_per_block: int
    kernel_size: int
    activation: str
    pooling: str
    batch_norm: bool
    conv_dropout: float
    dense_units: int
    dense_dropout: float
    augment_flip: bool
    augment_max_shift: float
    augment_erasing: float
    label_smoothing: float
    flip_averaging: bool
    optimizer: str
    learning_rate: float
    lr_schedule: str
    weight_decay: float
    batch_size: int
    epochs: int
    early_stopping_patience: int

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> TrainParams:
        return cls.from_mapping(read_section("train", path), path)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], path: Path = PARAMS_FILE) -> TrainParams:
        reader = SectionReader("train", raw, path)
        params = cls(
            seed=reader.number("seed", integer=True, minimum=0),
            conv_filters=reader.positive_ints("conv_filters"),
            convs_per_block=reader.number("convs_per_block", integer=True, minimum=1),
            kernel_size=reader.number("kernel_size", integer=True, minimum=1),
            activation=reader.choice("activation", ACTIVATIONS),
            pooling=reader.choice("pooling", ("max", "average")),
            batch_norm=reader.flag("batch_norm"),
            conv_dropout=reader.number("conv_dropout", minimum=0, below=1),
            dense_units=reader.number("dense_units", integer=True, minimum=1),
            dense_dropout=reader.number("dense_dropout", minimum=0, below=1),
            augment_flip=reader.flag("augment_flip"),
            augment_max_shift=reader.number("augment_max_shift", minimum=0, below=1),
            augment_erasing=reader.number("augment_erasing", minimum=0, below=1),
            label_smoothing=reader.number("label_smoothing", minimum=0, below=1),
            flip_averaging=reader.flag("flip_averaging"),
            optimizer=reader.choice("optimizer", OPTIMIZERS),
            learning_rate=reader.number("learning_rate", above=0),
            lr_schedule=reader.choice("lr_schedule", ("constant", "cosine")),
            weight_decay=reader.number("weight_decay", minimum=0),
            batch_size=reader.number("batch_size", integer=True, minimum=1),
            epochs=reader.number("epochs", integer=True, minimum=1),
            early_stopping_patience=reader.number("early_stopping_patience", integer=True, minimum=0),
        )
        reader.finish()
        if params.weight_decay and params.optimizer != "adamw":
            raise reader.fail("weight_decay", "must be 0 unless train.optimizer is adamw", params.weight_decay)
        # Each pooling halves the image: 28 survives four halvings (28, 14, 7, 3, 1).
        if len(params.conv_filters) > 4:
            raise reader.fail("conv_filters", "may have at most 4 blocks for 28x28 images", list(params.conv_filters))
        return params


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int
    gallery_size: int

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> EvaluateParams:
        reader = SectionReader("evaluate", read_section("evaluate", path), path)
        params = cls(
            batch_size=reader.number("batch_size", integer=True, minimum=1),
            gallery_size=reader.number("gallery_size", integer=True, minimum=0),
        )
        reader.finish()
        return params


@dataclass(frozen=True)
class DriftParams:
    current_batch: str
    reference: str
    invert: str
    scenario: str
    strength: float | None
    seed: int
    feature_threshold: float
    drift_share: float
    embedding_components: int
    batch_size: int
    retrain_on_drift: bool

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> DriftParams:
        from pipeline.images import INVERT_CHOICES
        from pipeline.shifts import SCENARIOS

        reader = SectionReader("drift", read_section("drift", path), path)
        params = cls(
            current_batch=reader.value("current_batch", str, "a path"),
            reference=reader.choice("reference", ("val", "train")),
            invert=reader.choice("invert", INVERT_CHOICES),
            scenario=reader.choice("scenario", ("none", *SCENARIOS)),
            strength=reader.number("strength", minimum=0, optional=True),
            seed=reader.number("seed", integer=True, minimum=0),
            feature_threshold=reader.number("feature_threshold", above=0, below=1),
            drift_share=reader.number("drift_share", above=0, below=1.0000001),
            embedding_components=reader.number("embedding_components", integer=True, minimum=1),
            batch_size=reader.number("batch_size", integer=True, minimum=1),
            retrain_on_drift=reader.flag("retrain_on_drift"),
        )
        reader.finish()
        return params
