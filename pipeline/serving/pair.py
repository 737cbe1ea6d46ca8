"""The model in use and its unfamiliarity scorer, loaded and swapped together.

The scorer is fitted to one model's views (pipeline/model/unfamiliarity.py records that model's md5), so a pair is
loaded only when the scorer names the model file beside it: while a promotion has written the new model but not yet
its scorer, the service keeps answering with the old pair. The watcher polls both files and swaps in a new pair,
loaded and warmed up off the request path, between two batches: no request waits for a load or fails across it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.model.network import load_model
from pipeline.model.prediction import class_probabilities
from pipeline.model.unfamiliarity import Unfamiliarity, file_md5, scores
from pipeline.model.unfamiliarity import load as load_scorer
from pipeline.model.version import SHOWN_DIGITS, version_of
from pipeline.model.views import with_unfamiliarity_views

LOG = logging.getLogger("fashion-serve")


@dataclass(frozen=True)
class Outputs:
    probabilities: np.ndarray  # (N, classes) float32
    unfamiliarity: np.ndarray  # (N,) scores
    unfamiliar: np.ndarray  # (N,) bool: above the scorer's threshold


@dataclass(frozen=True)
class ModelPair:
    model: object  # the Keras model with its unfamiliarity views as extra outputs
    scorer: Unfamiliarity
    version: str

    def predict(self, images: np.ndarray) -> Outputs:
        probabilities, *views = class_probabilities(self.model, images, len(images))
        unfamiliarity = scores(self.scorer, views)
        return Outputs(np.asarray(probabilities), unfamiliarity, unfamiliarity > self.scorer.threshold)


def load_pair(model_path: Path, scorer_path: Path) -> ModelPair:
    """Both files as a pair, warmed up; a PipelineError naming the file when either is unreadable or they do not
    belong together."""
    model_md5 = file_md5(model_path)
    scorer = load_scorer(scorer_path)
    if not scorer.model_md5:
        LOG.warning(
            "fashion-serve: %s does not name its model (rerun `dvc repro`): loaded without that check", scorer_path
        )
    elif scorer.model_md5 != model_md5:
        raise PipelineError(
            f"{scorer_path}: fitted to model md5 {scorer.model_md5[:SHOWN_DIGITS]}, not to {model_path} "
            f"(md5 {model_md5[:SHOWN_DIGITS]}); waiting for the unfamiliarity stage to write the new model's"
        )
    pair = ModelPair(
        with_unfamiliarity_views(load_model(model_path)), scorer, version_of(model_md5, file_md5(scorer_path))
    )
    # Keras traces the prediction function on the first calls; two sizes make it general over the batch size, so the
    # first requests after a swap are not the ones that pay for it.
    for size in (1, 2):
        pair.predict(np.zeros((size, 28, 28, 1), np.uint8))
    return pair


def signature(path: Path) -> tuple | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class PairWatcher:
    """Loads the pair at start, then polls its two files every `interval` seconds and calls `on_swap` with each new
    pair that loads. A pair that fails to load is logged once (one line) and the pair in use keeps serving; it is tried
    again when either file changes."""

    def __init__(self, model_path: Path, scorer_path: Path, interval: float, on_swap: Callable[[ModelPair], None]):
        self.model_path, self.scorer_path, self.interval, self.on_swap = model_path, scorer_path, interval, on_swap
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pair-watcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def files(self) -> tuple:
        return signature(self.model_path), signature(self.scorer_path)

    def run(self) -> None:
        tried = None
        while not self.stopped.is_set():
            seen = self.files()
            if None in seen and seen != tried:
                tried = seen
                missing = [
                    str(path)
                    for path, status in zip((self.model_path, self.scorer_path), seen, strict=True)
                    if status is None
                ]
                LOG.warning("fashion-serve: waiting for %s (not found)", " and ".join(missing))
            if seen != tried and None not in seen:  # a change, or files replaced while the last load ran
                # A file still being written changes between two looks: load it once it has settled.
                self.stopped.wait(min(self.interval, 0.5))
                if self.files() == seen:
                    tried = seen
                    self.load(seen)
                    continue
            self.stopped.wait(self.interval)

    def load(self, seen: tuple) -> None:
        try:
            pair = load_pair(self.model_path, self.scorer_path)
        except PipelineError as error:
            LOG.warning("fashion-serve: not swapped, keeping the model in use: %s", " ".join(str(error).split()))
            return
        except Exception as error:  # anything Keras raises on a bad file: the pair in use must keep serving
            LOG.warning("fashion-serve: not swapped, keeping the model in use: %s: %s", self.model_path, error)
            return
        if self.files() != seen:  # replaced while loading: the checksums may not be of what was loaded; load again
            return
        self.on_swap(pair)
