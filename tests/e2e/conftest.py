"""The full pipeline on its defaults, once per session: the end-to-end, trained-model and browser tests share it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.workspaces import run, scratch_workspace


@pytest.fixture(scope="session")
def default_pipeline(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`dvc repro` with the default params on the real data, in a fresh copy of the repository (minutes: it trains
    the default model); its workspace and output are shared by the end-to-end, predict and browser tests."""
    root = scratch_workspace(tmp_path_factory.mktemp("workspace"))
    return root, run(["dvc", "repro"], root)
