import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.data.datasets import SPLITS, load_raw_split
from pipeline.data.validation import ValidateParams, failures_line, image_table, run_suite
from tests.support.data import write_dataset, write_manifest
from tests.support.workspaces import REPO_ROOT


def tiny_params(**overrides) -> ValidateParams:
    values = dict(
        expected_rows={"train": 200, "test": 50}, class_share_tolerance=0.02, max_test_duplicates_in_train=0.0
    )
    values.update(overrides)
    return ValidateParams(**values)


def tables_of(arrays):
    return {
        "train": image_table(arrays["train_images"], arrays["train_labels"]),
        "test": image_table(arrays["test_images"], arrays["test_labels"], arrays["train_images"]),
    }


def test_image_table_describes_each_image():
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    images[1, 3, 4], images[2] = 200, 7
    table = image_table(images, np.array([0, 0, 1, 2], dtype=np.uint8), train_images=images[1:2])
    assert table["pixel_max"].tolist() == [0, 200, 7, 0]
    assert table["pixel_range"].tolist() == [0, 200, 0, 0]
    assert table["class_share"].tolist() == [0.5, 0.5, 0.25, 0.25]
    assert table["duplicate_in_train"].tolist() == [False, True, False, False]


def test_clean_data_passes(tiny_arrays):
    summary = run_suite(tables_of(tiny_arrays), tiny_params())
    assert summary["success"] and summary["failed"] == []
    assert summary["evaluated"] == summary["passed"] == 23


def break_rows(arrays):
    arrays["test_images"] = arrays["test_images"][:-1]
    arrays["test_labels"] = arrays["test_labels"][:-1]


def break_labels(arrays):
    arrays["train_labels"][:3] = [10, 11, 12]


def break_blank(arrays):
    arrays["train_images"][5] = 0
    arrays["train_images"][6] = 255


def break_balance(arrays):
    arrays["train_labels"][:20] = 1  # class 0 vanishes, class 1 doubles


def break_leakage(arrays):
    arrays["test_images"][:2] = arrays["train_images"][10:12]


@pytest.mark.parametrize(
    ("breakage", "failures"),
    [
        (break_rows, [("test", "row count", None)]),
        # Labels 10-12 are also classes of 1 image each: far below a tenth of the split.
        (break_labels, [("train", "label in 0-9", 3), ("train", "class balance", 3)]),
        (break_blank, [("train", "no blank images", 2)]),
        (break_balance, [("train", "class balance", 40)]),
        (break_leakage, [("test", "no test images duplicated in train", 2)]),
    ],
)
def test_each_kind_of_broken_data_fails_naming_the_expectation(tiny_arrays, breakage, failures):
    breakage(tiny_arrays)
    summary = run_suite(tables_of(tiny_arrays), tiny_params())
    assert not summary["success"]
    found = [(failure["split"], failure["expectation"], failure["unexpected_rows"]) for failure in summary["failed"]]
    assert found == failures
    split, expectation, _ = failures[0]
    assert f"{split}: expectation '{expectation}'" in failures_line(summary)


@pytest.mark.parametrize(
    ("column", "value", "expectation"),
    [
        ("height", 27, "image height 28"),
        ("width", 29, "image width 28"),
        ("pixel_max", 256, "pixel max in 0-255"),
        ("label", None, "no missing label"),
    ],
)
def test_broken_table_columns_fail_naming_the_expectation(tiny_arrays, column, value, expectation):
    tables = tables_of(tiny_arrays)
    tables["test"][column] = tables["test"][column].astype(object if value is None else tables["test"][column].dtype)
    tables["test"].loc[3, column] = value
    summary = run_suite(tables, tiny_params())
    assert expectation in [failure["expectation"] for failure in summary["failed"]]


def test_leakage_within_tolerance_passes(tiny_arrays):
    break_leakage(tiny_arrays)  # 2 of 50 test images: 4%
    assert run_suite(tables_of(tiny_arrays), tiny_params(max_test_duplicates_in_train=0.05))["success"]


def run_validate_stage(raw_dir, params_path, tmp_path):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.validate",
            "--params",
            str(params_path),
            "--raw",
            str(raw_dir),
            "--docs",
            str(tmp_path / "docs"),
            "--summary",
            str(tmp_path / "summary.json"),
            "--metrics",
            str(tmp_path / "metrics.json"),
            "--lineage",
            str(tmp_path / "lineage.json"),
            "--web-assets",
            str(REPO_ROOT / "node_modules"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )


def test_stage_fails_with_one_line_naming_the_expectation_and_keeps_its_report(tiny_arrays, tmp_path, write_params):
    break_labels(tiny_arrays)
    raw = write_dataset(tmp_path / "raw", tiny_arrays, compress=False)
    write_manifest(raw)
    params = write_params({"validate.expected_rows": {"train": 200, "test": 50}})
    result = run_validate_stage(raw, params, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "validate: error: 2 expectation(s) failed: train: expectation 'label in 0-9' "
        "(expect_column_values_to_be_between) broken by 3 of 200 rows; "
        "train: expectation 'class balance' (expect_column_values_to_be_between) broken by 3 of 200 rows"
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"][0]["expectation"] == "label in 0-9"
    assert (tmp_path / "docs" / "index.html").is_file()
    # The metrics file of a failed validation is written too, with the count beside the summary's.
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == {"expectations_passed": summary["passed"]} and summary["passed"] == 21


def test_real_data_passes(real_raw_dir, tmp_path):
    result = run_validate_stage(real_raw_dir, REPO_ROOT / "params.yaml", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["success"] and summary["evaluated"] == 23
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"expectations_passed": 23}
    assert "label in 0-9" in (tmp_path / "docs" / "expectations" / "train_images.html").read_text()
    pages = list((tmp_path / "docs").rglob("*.html"))
    assert len(pages) == 5  # the index, two suites, two validation results
    for page in pages:
        assert "cdn" not in page.read_text(), page
    assert (tmp_path / "docs" / "static" / "vendor" / "jquery" / "dist" / "jquery.min.js").is_file()
    record = json.loads((tmp_path / "lineage.json").read_text())
    assert record["data"].startswith("fashion_mnist sha256:")
    assert "class_share_tolerance" in record["params"]["validate"]


def test_real_splits_have_the_published_sizes(real_raw_dir):
    assert {split: len(load_raw_split(real_raw_dir, split)[1]) for split in SPLITS} == {"train": 60000, "test": 10000}
