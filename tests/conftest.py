"""What every layer of the tests shares: Prefect's settings for the session, the real data, params files, and how
tests are spread over pytest-xdist's workers.

The layers, each with a conftest of its own fixtures (docs/testing.md):
- unit/: library functions on small arrays, in process;
- stages/: each DVC stage and command run as a process on small data (and the real data where it matters), and
  dvc.yaml and dvc.lock against the code;
- flows/: the Prefect flows, deployments and runs from a terminal, on a small workspace of the real data;
- e2e/: the full pipeline on its defaults, the model it trains, and its reports in a real browser.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.support.data import set_keys
from tests.support.workspaces import REPO_ROOT

# Prefect's home (database, logs) for the tests is their own, not the project's .prefect/; set before anything
# imports prefect, which reads its settings once. Each xdist worker is a process of its own, with a home of its own.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"

# Session fixtures that take minutes: every test that uses one runs on the same xdist worker, so that each is built
# once per session rather than once per worker.
SHARED_SETUPS = {
    "default_pipeline": "default-pipeline",
    "small_workspace": "small-workspace",
    "prefect_backend": "small-workspace",
}


def pytest_xdist_auto_num_workers(config) -> int:
    # Past 4 workers the two long groups (the default training, the flows) decide the time; each worker is a
    # process holding TensorFlow (about half a GiB).
    return max(1, min(os.cpu_count() or 1, 4))


def pytest_itemcollected(item):
    """Group the tests for `--dist loadgroup` as they are collected: by the long session fixture they share, else by
    module where a test uses a module-scoped fixture of its module (a server, a trained model), so that each is built
    once and its module's tests run in order. The others go to whichever worker is free."""
    if item.get_closest_marker("xdist_group"):
        return
    shared = [group for fixture, group in SHARED_SETUPS.items() if fixture in item.fixturenames]
    fixtures = [definition for definitions in item._fixtureinfo.name2fixturedefs.values() for definition in definitions]
    if shared:
        item.add_marker(pytest.mark.xdist_group(shared[0]))
    elif any(definition.scope == "module" and definition.baseid for definition in fixtures):
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def pytest_collection_finish(session):
    """On an xdist worker: stop if the groups did not reach xdist (it reads them from the node ids), rather than
    build the default training once per worker."""
    if getattr(session.config.option, "loadgroup", False) and any(
        item.get_closest_marker("xdist_group") and "@" not in item.nodeid for item in session.items
    ):
        raise pytest.UsageError("pytest-xdist did not group the tests: use the pytest version pyproject.toml names")


@pytest.fixture
def repo_params() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


@pytest.fixture
def write_params(tmp_path, repo_params):
    """Write the repository's params.yaml with `section.key` overrides; returns the file's path."""

    def write(overrides: dict | None = None, name: str = "params.yaml") -> Path:
        params = copy.deepcopy(repo_params)
        set_keys(params, overrides or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(params))
        return path

    return write


@pytest.fixture(scope="session")
def real_raw_dir(tmp_path_factory) -> Path:
    """The real Fashion-MNIST, ingested and verified from the system copy (Debian's dataset-fashion-mnist)."""
    from pipeline.data.datasets import dataset_spec
    from pipeline.data.ingestion import IngestParams, choose_source, ingest_dataset
    from pipeline.params import load_params

    params = load_params(IngestParams, REPO_ROOT / "params.yaml")
    spec = dataset_spec("fashion_mnist")
    source = choose_source(params, spec)
    assert source.kind == "system_dir", "install the real data first: apt-get install dataset-fashion-mnist"
    out = tmp_path_factory.mktemp("real") / "fashion_mnist"
    ingest_dataset(source, spec, out)
    return out
