"""The tuning search space of params.yaml (`tune.space`), checked when it is loaded, and each trial's train params.

Each entry names a hyperparameter and its candidates, either a list of values or a range:
    batch_size: [64, 128, 256]
    learning_rate: {min: 0.0005, max: 0.005, sampling: log}
    dense_dropout: {min: 0.2, max: 0.5, step: 0.1}
Hyperparameters are keys of the train section, plus two that shape its `conv_filters`: `conv_blocks` (how many
blocks) and `first_block_filters` (the first block's filters, doubled in each next block). Keys left out keep
their train-section values, so a trial differs from the train stage's model only where the space says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pipeline.model.training import TrainParams
from pipeline.params import ParamsError, SectionReader, load_params, param, read_section
from pipeline.tuning.objectives import OBJECTIVES

# The train keys a search may vary; the rest (seed, epochs, schedule, ...) belong to the search itself.
TUNABLE_TRAIN_KEYS = (
    "learning_rate",
    "batch_size",
    "kernel_size",
    "convs_per_block",
    "dense_units",
    "dense_dropout",
    "conv_dropout",
    "batch_norm",
    "augment_flip",
    "augment_max_shift",
    "augment_erasing",
    "label_smoothing",
    "activation",
    "pooling",
    "optimizer",
    "weight_decay",
)
FILTER_KEYS = ("conv_blocks", "first_block_filters")
TUNABLE = TUNABLE_TRAIN_KEYS + FILTER_KEYS
RANGE_KEYS = {"min", "max", "step", "sampling"}


@dataclass(frozen=True)
class Dimension:
    name: str
    choices: tuple | None = None  # a list of values, or else a range:
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def is_integer(self) -> bool:
        return self.choices is None and all(isinstance(bound, int) for bound in (self.low, self.high))

    @property
    def is_finite(self) -> bool:
        return self.choices is not None or self.is_integer or self.step is not None

    @property
    def is_fixed(self) -> bool:
        """A one-value list: the key is set for every trial rather than searched."""
        return self.choices is not None and len(self.choices) == 1

    def extremes(self) -> tuple:
        return self.choices if self.choices is not None else (self.low, self.high)

    def declare(self, hp) -> Any:
        """Register with a KerasTuner HyperParameters object; returns the trial's value."""
        if self.choices is not None:
            return hp.Choice(self.name, list(self.choices))
        sampling = "log" if self.log else "linear"
        if self.is_integer:
            return hp.Int(self.name, self.low, self.high, step=self.step or 1, sampling=sampling)
        return hp.Float(self.name, self.low, self.high, step=self.step, sampling=sampling)


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    base: dict[str, Any]  # the train section the trials start from

    def train_params(self, values: dict[str, Any], epochs: int) -> TrainParams:
        """The train params of one trial: the base section with the trial's values and the search's epochs."""
        return load_params(TrainParams, raw=trial_section(self.base, values, epochs))

    def dimension(self, name: str) -> Dimension | None:
        return next((dimension for dimension in self.dimensions if dimension.name == name), None)

    def declare(self, hp) -> dict[str, Any]:
        return {dimension.name: dimension.declare(hp) for dimension in self.dimensions}

    def is_discrete(self) -> bool:
        """Every dimension has finitely many values (lists, or ranges with a step), as grid search needs."""
        return all(dimension.is_finite for dimension in self.dimensions)


def trial_section(base: dict[str, Any], values: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The train section of a trial, as it would read in params.yaml."""
    section = {**base, "epochs": epochs}
    section.update({key: value for key, value in values.items() if key in TUNABLE_TRAIN_KEYS})
    blocks = values.get("conv_blocks", len(base["conv_filters"]))
    first = values.get("first_block_filters", base["conv_filters"][0])
    if "conv_blocks" in values or "first_block_filters" in values:
        section["conv_filters"] = [int(first) * 2**block for block in range(int(blocks))]
    return section


def load_space(raw: Any, base: dict[str, Any], path: Path) -> SearchSpace:
    """Parse `tune.space`; a malformed entry is a ParamsError naming `tune.space.<key>`."""
    if not isinstance(raw, dict) or not raw:
        raise ParamsError(f"{path}: tune.space must be a non-empty mapping of hyperparameters, got {raw!r}")
    dimensions = tuple(parse_dimension(name, spec, path) for name, spec in raw.items())
    space = SearchSpace(dimensions, base)
    for dimension in dimensions:
        for value in dimension.extremes():
            check_value(space, dimension.name, value, path)
    return space


def parse_dimension(name: Any, spec: Any, path: Path) -> Dimension:
    where = f"{path}: tune.space.{name}"
    if name not in TUNABLE:
        raise ParamsError(f"{where} is not a tunable hyperparameter (tunable: {', '.join(TUNABLE)})")
    if isinstance(spec, list):
        if not spec:
            raise ParamsError(f"{where} is an empty list of values")
        if not all(isinstance(value, bool | int | float | str) for value in spec) or len(set(spec)) != len(spec):
            raise ParamsError(f"{where} must list distinct numbers, strings or booleans, got {spec!r}")
        return Dimension(name, choices=tuple(spec))
    if not isinstance(spec, dict) or not {"min", "max"} <= set(spec) or set(spec) - RANGE_KEYS:
        raise ParamsError(f"{where} must be a list of values or {{min, max[, step][, sampling]}}, got {spec!r}")
    low, high, step = spec["min"], spec["max"], spec.get("step")
    numbers = [bound for bound in (low, high, step) if bound is not None]
    if not all(isinstance(bound, int | float) and not isinstance(bound, bool) for bound in numbers):
        raise ParamsError(f"{where}: min, max and step must be numbers, got {spec!r}")
    if low > high:
        raise ParamsError(f"{where}: min {low} is greater than max {high}")
    if low == high:
        raise ParamsError(f"{where}: min and max are both {low}, an empty range (give a single value as [{low}])")
    if step is not None and step <= 0:
        raise ParamsError(f"{where}: step must be > 0, got {step}")
    sampling = spec.get("sampling", "linear")
    if sampling not in ("linear", "log") or (sampling == "log" and low <= 0):
        raise ParamsError(f"{where}: sampling must be linear, or log with min > 0, got {sampling!r} from {low}")
    return Dimension(name, low=low, high=high, step=step, log=sampling == "log")


def check_value(space: SearchSpace, name: str, value: Any, path: Path) -> None:
    """A candidate value must make valid train params on its own (its range ends stand for the range)."""
    try:
        space.train_params({name: value}, epochs=1)
    except ParamsError as error:
        reason = str(error).split(": ", 1)[-1]
        raise ParamsError(f"{path}: tune.space.{name} value {value!r} makes invalid train params ({reason})") from None


STRATEGIES = ("grid", "random", "bayesian", "hyperband")


def read_space(reader: SectionReader, key: str) -> SearchSpace:
    """`tune.space`, checked against the train section of the params file being read (every trial starts from it),
    which is read from that file even when the tune section itself was given as `raw`."""
    return load_space(reader.value(key, dict, "a mapping"), read_section("train", reader.path), reader.path)


@dataclass(frozen=True)
class TuneParams:
    SECTION: ClassVar[str] = "tune"
    strategy: str = param("choice", options=STRATEGIES)
    objective: str = param("choice", options=OBJECTIVES)
    max_trials: int = param("number", integer=True, minimum=1)
    epochs: int = param("number", integer=True, minimum=1)
    final_epochs: int | None = param("number", integer=True, minimum=1, optional=True)
    hyperband_factor: int = param("number", integer=True, minimum=2)
    max_minutes: float = param("number", above=0)
    seed: int = param("number", integer=True, minimum=0)
    workers: int = param("number", integer=True, minimum=1)
    space: SearchSpace = param(read_space)

    def check(self, reader: SectionReader) -> None:
        if self.strategy == "grid" and not self.space.is_discrete():
            continuous = next(dimension for dimension in self.space.dimensions if not dimension.is_finite)
            raise ParamsError(
                f"{reader.path}: tune.space.{continuous.name} needs a step or a list of values for grid search"
            )
        smoothing = self.space.dimension("label_smoothing")
        if self.objective == "val_loss" and smoothing and len(smoothing.extremes()) > 1:
            # Keras' val_loss is the smoothed loss, larger the more smoothing: it would rank smoothing, not models.
            raise ParamsError(
                f"{reader.path}: tune.space.label_smoothing varies, so objective val_loss cannot compare trials"
            )
