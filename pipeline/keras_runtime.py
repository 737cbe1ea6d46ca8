"""Importing Keras (on TensorFlow) without the C++ runtime's start-up chatter on stderr.

TensorFlow's native logging prints INFO lines at import (oneDNN, CPU features) that no
environment variable silences in current releases; they would bury a stage's one-line error.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_keras():
    """The keras module, with TensorFlow imported quietly first (Python errors still surface)."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _native_stderr_silenced():
            import tensorflow  # noqa: F401
    import keras

    return keras
