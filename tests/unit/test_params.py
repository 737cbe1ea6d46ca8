import subprocess
import sys

import pytest

from pipeline.data.datasets import dataset_spec
from pipeline.data.ingestion import IngestParams
from pipeline.data.preprocessing import PreprocessParams
from pipeline.data.validation import ValidateParams
from pipeline.errors import PipelineError
from pipeline.params import ParamsError, load_params
from tests.support.workspaces import REPO_ROOT


def test_repository_params_load():
    assert load_params(IngestParams, REPO_ROOT / "params.yaml").dataset == "fashion_mnist"
    assert load_params(ValidateParams, REPO_ROOT / "params.yaml").expected_rows == {"train": 60000, "test": 10000}
    assert 0 < load_params(PreprocessParams, REPO_ROOT / "params.yaml").val_fraction < 1


@pytest.mark.parametrize("value", [-0.1, 0, 1, 1.5])
def test_val_fraction_outside_0_1_names_key_and_value(write_params, value):
    path = write_params({"preprocess.val_fraction": value})
    with pytest.raises(ParamsError) as caught:
        load_params(PreprocessParams, path)
    assert str(caught.value) == f"{path}: preprocess.val_fraction must be > 0 and < 1, got {value!r}"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("preprocess.seed", "42", "preprocess.seed must be an integer, got '42'"),
        ("preprocess.seed", True, "preprocess.seed must be an integer, got True"),
        ("ingest.download_attempts", 0, "ingest.download_attempts must be >= 1, got 0"),
        ("ingest.download_timeout_seconds", -5, "ingest.download_timeout_seconds must be > 0, got -5"),
        ("ingest.mirrors", {"mnist": "http://x/"}, "ingest.mirrors.mnist must be a list of base URLs, got 'http://x/'"),
        (
            "validate.expected_rows",
            {"train": 100},
            "validate.expected_rows.test must be a positive row count, got None",
        ),
        ("validate.class_share_tolerance", 2, "validate.class_share_tolerance must be > 0 and < 1, got 2"),
    ],
)
def test_bad_values_name_the_key(write_params, key, value, message):
    path = write_params({key: value})
    loader = {"preprocess": PreprocessParams, "ingest": IngestParams, "validate": ValidateParams}[key.split(".")[0]]
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_params(loader, path)


def test_unknown_and_missing_keys(write_params, repo_params):
    with pytest.raises(ParamsError, match=r"preprocess.val_fracton is not a known key"):
        load_params(PreprocessParams, write_params({"preprocess.val_fracton": 0.1}))
    del repo_params["preprocess"]["seed"]
    with pytest.raises(ParamsError, match=r"preprocess.seed is missing"):
        load_params(PreprocessParams, write_params())
    del repo_params["preprocess"]
    with pytest.raises(ParamsError, match=r"section 'preprocess' is missing"):
        load_params(PreprocessParams, write_params())


def test_unknown_dataset_name():
    with pytest.raises(PipelineError, match=r"unknown dataset 'cifar'; known: fashion_mnist, mnist, custom"):
        dataset_spec("cifar")


def test_stage_exits_with_one_line_error(write_params, tmp_path):
    path = write_params({"preprocess.val_fraction": -0.5})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.preprocess",
            "--params",
            str(path),
            "--raw",
            str(tmp_path),
            "--out",
            str(tmp_path / "prepared"),
            "--pictures",
            str(tmp_path / "pictures"),
            "--pool",
            str(tmp_path / "pool"),
            "--dataset",
            "fashion_mnist",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"preprocess: error: {path}: preprocess.val_fraction must be > 0 and < 1, got -0.5"
    ]
    assert not (tmp_path / "prepared").exists()
