"""Fixtures of the flow tests: Prefect's test server, and small workspaces of the real data.

A small workspace is a scratch copy of the repository whose params read 10,000 training and 2,000 test images of the
real Fashion-MNIST (the first of each class, through `ingest.dataset: custom`) and train a model in seconds
(FAST_REAL_TRAIN). Its stages run as they do on the full data, in about 40 s for the whole pipeline, most of it in
starting each stage's process.

- `new_small_workspace(name)`: one that has never run, for a test of a first run;
- `copy_of_small_workspace(name)`: a copy of the one the training flow ran once per session (its model, reports, DVC
  cache and git history), for a test that starts from a model in use. Prefer it for a new slow test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from prefect.client.schemas.objects import FlowRun, State

from pipeline.data.datasets import FILE_NAMES
from pipeline.data.idx import read_idx
from tests.support.data import write_dataset
from tests.support.prefect_server import PrefectServer
from tests.support.prefect_server import prefect_server as start_prefect_server
from tests.support.storage import WebDavServer, webdav_server
from tests.support.training import FAST_REAL_TRAIN
from tests.support.workspaces import copy_workspace, scratch_workspace

TRAIN_PER_CLASS = 1_000
TEST_PER_CLASS = 200


@pytest.fixture(scope="session")
def prefect_backend():
    """One temporary Prefect server (SQLite) for every flow run of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def first_of_each_class(images: np.ndarray, labels: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    chosen = np.sort(np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in range(10)]))
    return images[chosen], labels[chosen]


@pytest.fixture(scope="session")
def small_params(real_raw_dir, tmp_path_factory) -> dict:
    """The params (`section.key` -> value) of a small workspace: its data, its checks of that data, a fast model."""
    arrays = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        images = read_idx(real_raw_dir / FILE_NAMES[f"{split}_images"])
        labels = read_idx(real_raw_dir / FILE_NAMES[f"{split}_labels"])
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = first_of_each_class(images, labels, per_class)
    source = write_dataset(tmp_path_factory.mktemp("small-data"), arrays)
    return FAST_REAL_TRAIN | {
        "ingest.dataset": "custom",
        "ingest.source_dir": str(source),
        "validate.expected_rows.train": 10 * TRAIN_PER_CLASS,
        "validate.expected_rows.test": 10 * TEST_PER_CLASS,
    }


@pytest.fixture(scope="session")
def new_small_workspace(small_params, tmp_path_factory) -> Callable[..., Path]:
    """A small workspace that has never run; `params` are more `section.key` overrides committed in it."""

    def make(name: str, params: dict | None = None) -> Path:
        return scratch_workspace(tmp_path_factory.mktemp(name), params=small_params | (params or {}))

    return make


class FirstRun(NamedTuple):
    root: Path
    state: State  # the training flow's final state
    flow_run: FlowRun


@pytest.fixture(scope="session")
def small_workspace(prefect_backend, new_small_workspace) -> FirstRun:
    """The small workspace after its first training flow run, which ran every stage: tests/flows/test_training_flow.py
    checks that run; other tests copy the workspace (copy_of_small_workspace) and never change it."""
    from prefect.client.orchestration import get_client

    from flows.training import training_pipeline

    root = new_small_workspace("small-workspace")
    state = training_pipeline(workspace=str(root), return_state=True)
    assert state.is_completed(), state.message
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    return FirstRun(root, state, flow_run)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Iterator[PrefectServer]:
    """A real `prefect server start` on loopback for the session, with the services workers, leases and automations
    need (tests/support/prefect_server.py)."""
    with start_prefect_server(tmp_path_factory.mktemp("prefect-server")) as server:
        yield server


@pytest.fixture(scope="session")
def team_storage(tmp_path_factory) -> Iterator[WebDavServer]:
    """One WebDAV server on loopback for the session, a store per test (`team_storage.new_store(name)`)."""
    with webdav_server(tmp_path_factory.mktemp("webdav")) as server:
        yield server


@pytest.fixture(scope="session")
def copy_of_small_workspace(small_workspace, tmp_path_factory) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        return copy_workspace(small_workspace.root, tmp_path_factory.mktemp(name) / "workspace")

    return make
