"""The paths the flows read (flows/artifacts.py) are paths dvc.yaml names, or inside folders it names. A file inside
an output folder (the Data Docs' index.html) is the stage's to name: this holds the folder, not the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.artifacts import PIPELINE_PATHS

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_FILES = (ROOT / "dvc.yaml", ROOT / "tuning" / "dvc.yaml")


def named_paths() -> set[Path]:
    """Every path dvc.yaml files name: deps, outs and metrics, and the path arguments of each command."""
    named = set()
    for pipeline_file in PIPELINE_FILES:
        for stage in yaml.safe_load(pipeline_file.read_text())["stages"].values():
            entries = [*stage.get("deps", []), *stage.get("outs", []), *stage.get("metrics", [])]
            named.update(Path(entry if isinstance(entry, str) else next(iter(entry))) for entry in entries)
            named.update(Path(word) for word in stage["cmd"].split() if "/" in word and "$" not in word)
    return named


NAMED = named_paths()


def is_named(path: Path) -> bool:
    return any(path == named or named in path.parents for named in NAMED)


@pytest.mark.parametrize("path", PIPELINE_PATHS, ids=str)
def test_each_path_a_flow_reads_is_one_the_pipeline_names(path):
    assert is_named(path), f"flows/artifacts.py: {path} is neither named in dvc.yaml nor inside a path it names"


def test_the_check_itself_tells_named_paths_from_others():
    assert is_named(Path("reports/evaluate/metrics.json"))  # an output
    assert is_named(Path("reports/validate/data_docs/index.html"))  # inside an output folder
    assert not is_named(Path("reports/evaluate/elsewhere.json"))
    assert not is_named(Path("models"))  # a folder that only holds outputs is not one
