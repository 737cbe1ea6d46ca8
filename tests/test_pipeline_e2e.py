"""The real `dvc repro` on the real data, in a fresh copy of the repository."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from pipeline.preprocess import load_arrays
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def run(command, cwd, check=True):
    # The stages' `python` and `dvc` itself must be those of the environment running the tests.
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A git clone-alike of the working tree (tracked and new files), with no generated outputs."""
    root = tmp_path_factory.mktemp("workspace")
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO_ROOT).stdout.split()
    for name in files:
        if (REPO_ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    run(["git", "init", "-q"], root)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "add", "-A"], root)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "snapshot"], root)
    first = run(["dvc", "repro"], root)
    return root, first


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_first_run_ingests_validates_and_prepares_the_real_data(workspace):
    root, first = workspace
    assert ran_stages(first.stdout) == ["ingest", "validate", "preprocess"]
    counts = {
        name: len(load_arrays(root / "data" / "prepared" / f"{name}.npz")[1]) for name in ("train", "val", "test")
    }
    assert counts == {"train": 48000, "val": 12000, "test": 10000}
    assert (root / "reports" / "validate" / "data_docs" / "index.html").is_file()
    assert (root / "reports" / "preprocess" / "sample_grid.png").is_file()


def test_second_run_does_nothing(workspace):
    root, _ = workspace
    again = run(["dvc", "repro"], root)
    assert ran_stages(again.stdout) == []
    assert "Data and pipelines are up to date" in again.stdout


def test_changing_val_fraction_reruns_only_preprocess(workspace):
    root, _ = workspace
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["val_fraction"] = 0.1
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert "preprocess.val_fraction" in run(["dvc", "params", "diff"], root).stdout
    rerun = run(["dvc", "repro"], root)
    assert ran_stages(rerun.stdout) == ["preprocess"]
    _, val_labels = load_arrays(root / "data" / "prepared" / "val.npz")
    np.testing.assert_array_equal(np.bincount(val_labels), np.full(10, 600))


def test_failed_stage_keeps_the_last_good_outputs(workspace):
    root, _ = workspace
    before = (root / "data" / "prepared" / "train.npz").read_bytes()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["val_fraction"] = 1.5
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    failed = run(["dvc", "repro"], root, check=False)
    assert failed.returncode != 0
    assert "preprocess.val_fraction must be > 0 and < 1, got 1.5" in failed.stderr + failed.stdout
    assert (root / "data" / "prepared" / "train.npz").read_bytes() == before
