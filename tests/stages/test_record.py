"""main carries a true record: dvc.lock is the lock of a real run of the committed code and params, and the committed
metrics are that run's. A change to a stage's code or params without the rerun fails here, naming what changed."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.team.registry import committed_outputs

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
LOCK = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
RERUN = "rerun `dvc repro` and commit dvc.lock with the metrics (docs/stages.md, 'Keeping the record')"


def tracked_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return set(filter(None, listed.split("\0")))


TRACKED = tracked_files()


def param(dotted: str):
    value = PARAMS
    for key in dotted.split("."):
        value = value[key]
    return value


def interpolated(text: str) -> str:
    """`${section.key}` replaced by its params.yaml value, as DVC does."""
    return re.sub(r"\$\{([\w.]+)\}", lambda match: str(param(match[1])), text)


def entry_path(entry) -> str:
    """A deps/outs entry of dvc.yaml is a path, or a mapping of one path to its options."""
    return interpolated(entry if isinstance(entry, str) else next(iter(entry)))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_lock_records_every_stage_of_the_pipeline():
    assert set(LOCK) == set(PIPELINE), f"dvc.lock records {sorted(LOCK)}, dvc.yaml has {sorted(PIPELINE)}: {RERUN}"


@pytest.mark.parametrize("name", list(PIPELINE))
def test_the_locked_command_and_deps_are_the_committed_ones(name):
    stage, locked = PIPELINE[name], LOCK.get(name)
    assert locked, f"dvc.lock has no record of stage {name}: {RERUN}"
    assert locked["cmd"] == interpolated(stage["cmd"]), f"stage {name}'s command changed since its run: {RERUN}"
    declared = {entry_path(dep) for dep in stage.get("deps", [])}
    recorded = {dep["path"]: dep for dep in locked.get("deps", [])}
    assert set(recorded) == declared, (
        f"stage {name}'s deps changed since its run (added {sorted(declared - set(recorded))}, "
        f"removed {sorted(set(recorded) - declared)}): {RERUN}"
    )
    changed = [path for path, dep in recorded.items() if path in TRACKED and md5(ROOT / path) != dep.get("md5")]
    assert not changed, f"stage {name}: {', '.join(sorted(changed))} changed since the recorded run: {RERUN}"


@pytest.mark.parametrize("name", list(PIPELINE))
def test_the_locked_params_are_the_committed_ones(name):
    recorded = LOCK.get(name, {}).get("params", {}).get("params.yaml", {})
    declared = PIPELINE[name].get("params", [])
    assert set(recorded) == set(declared), f"stage {name}'s params list changed since its run: {RERUN}"
    changed = sorted(key for key, value in recorded.items() if param(key) != value)
    assert not changed, f"stage {name}: params.yaml's {', '.join(changed)} changed since the recorded run: {RERUN}"


COMMITTED = committed_outputs(ROOT)
RECORDED_OUTPUTS = {out["path"]: out for stage in LOCK.values() for out in stage.get("outs", [])}


@pytest.mark.parametrize("path", COMMITTED)
def test_committed_metrics_and_plot_data_are_those_of_the_recorded_run(path):
    """What git carries of the outputs (`cache: false`) is what the recorded run wrote."""
    assert path in TRACKED, f"{path} is `cache: false` in dvc.yaml, so git must carry it: commit it"
    assert path in RECORDED_OUTPUTS, f"dvc.lock has no record of {path}: {RERUN}"
    assert md5(ROOT / path) == RECORDED_OUTPUTS[path]["md5"], f"{path} is not the one its stage last wrote: {RERUN}"


def test_the_plots_are_drawn_from_files_git_carries():
    """`dvc plots diff` across commits needs the data of every plot in git."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    sources = {path for plot in plots for definition in plot.values() for path in definition["y"]}
    assert sources <= set(COMMITTED), f"dvc.yaml: plot data {sorted(sources - set(COMMITTED))} need cache: false"


def test_headline_metrics_are_not_left_to_the_cache():
    """`dvc metrics diff` across commits needs every metrics file in git."""
    for name, stage in PIPELINE.items():
        for entry in stage.get("metrics", []):
            options = next(iter(entry.values())) if isinstance(entry, dict) else {}
            assert options.get("cache") is False, (
                f"dvc.yaml: stage {name}'s metrics {entry_path(entry)} need cache: false"
            )
