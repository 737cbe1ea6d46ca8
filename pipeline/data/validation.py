"""The validate stage's Great Expectations suite over a per-image table of each split, its Data Docs and summary."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.data.datasets import NUM_CLASSES
from pipeline.params import SectionReader, param


@dataclass(frozen=True)
class ValidateParams:
    SECTION: ClassVar[str] = "validate"
    expected_rows: dict[str, int] = param("string_map", item_kind=int, description="a positive row count")
    class_share_tolerance: float = param("number", above=0, below=1)
    max_test_duplicates_in_train: float = param("number", minimum=0, below=1)

    def check(self, reader: SectionReader) -> None:
        for split in ("train", "test"):
            if self.expected_rows.get(split, 0) <= 0:
                raise reader.fail(
                    f"expected_rows.{split}", "must be a positive row count", self.expected_rows.get(split)
                )


def image_table(images: np.ndarray, labels: np.ndarray, train_images: np.ndarray | None = None) -> pd.DataFrame:
    """One row per image: the properties the expectations look at.

    `duplicate_in_train` marks images that also appear pixel for pixel among `train_images`
    (leakage from the training set into an evaluation split); it is all False without them.
    """
    flat = images.reshape(len(images), -1)
    class_counts = np.bincount(labels.astype(np.int64), minlength=max(NUM_CLASSES, int(labels.max(initial=0)) + 1))
    table = pd.DataFrame(
        {
            "label": labels.astype(np.int64),
            "height": np.full(len(images), images.shape[1]),
            "width": np.full(len(images), images.shape[2]),
            "pixel_min": flat.min(axis=1, initial=255).astype(np.int64),
            "pixel_max": flat.max(axis=1, initial=0).astype(np.int64),
            "class_share": class_counts[labels] / max(len(labels), 1),
        }
    )
    table["pixel_range"] = table["pixel_max"] - table["pixel_min"]
    seen = {row.tobytes() for row in train_images.reshape(len(train_images), -1)} if train_images is not None else set()
    table["duplicate_in_train"] = [row.tobytes() in seen for row in flat]
    return table


@dataclass(frozen=True)
class Check:
    """One named expectation: the name is what a failure message and the Data Docs show."""

    name: str
    expectation: object


def build_checks(split: str, params: ValidateParams) -> list[Check]:
    import great_expectations as gx

    expected_share = 1 / NUM_CLASSES
    tolerance = params.class_share_tolerance
    checks = [
        Check("row count", gx.expectations.ExpectTableRowCountToEqual(value=params.expected_rows[split])),
        Check("label in 0-9", gx.expectations.ExpectColumnValuesToBeBetween(column="label", min_value=0, max_value=9)),
        Check(
            "pixel min in 0-255",
            gx.expectations.ExpectColumnValuesToBeBetween(column="pixel_min", min_value=0, max_value=255),
        ),
        Check(
            "pixel max in 0-255",
            gx.expectations.ExpectColumnValuesToBeBetween(column="pixel_max", min_value=0, max_value=255),
        ),
        Check("image height 28", gx.expectations.ExpectColumnValuesToBeInSet(column="height", value_set=[28])),
        Check("image width 28", gx.expectations.ExpectColumnValuesToBeInSet(column="width", value_set=[28])),
        Check(
            "class balance",
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="class_share", min_value=expected_share - tolerance, max_value=expected_share + tolerance
            ),
        ),
        Check("no blank images", gx.expectations.ExpectColumnValuesToBeBetween(column="pixel_range", min_value=1)),
    ]
    checks += [
        Check(f"no missing {column}", gx.expectations.ExpectColumnValuesToNotBeNull(column=column))
        for column in ("label", "pixel_min", "pixel_max")
    ]
    if split != "train":
        checks.append(
            Check(
                "no test images duplicated in train",
                gx.expectations.ExpectColumnValuesToBeInSet(
                    column="duplicate_in_train", value_set=[False], mostly=1 - params.max_test_duplicates_in_train
                ),
            )
        )
    for check in checks:
        check.expectation.description = check.name
    return checks


def run_suite(tables: dict[str, pd.DataFrame], params: ValidateParams, docs_dir: Path | None = None) -> dict:
    """Validate each split's table; returns the summary, with Data Docs written to `docs_dir` when given."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics leave the machine
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    for site in list(context.list_data_docs_sites()):
        context.delete_data_docs_site(site)  # the default site would write into a temporary folder
    if docs_dir is not None:
        context.add_data_docs_site(
            "validate",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    source = context.data_sources.add_pandas("images")
    results = {}
    for split, table in tables.items():
        suite = context.suites.add(gx.ExpectationSuite(name=f"{split}_images"))
        for check in build_checks(split, params):
            suite.add_expectation(check.expectation)
        batch = source.add_dataframe_asset(split).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=split, data=batch, suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if docs_dir is not None else []
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"validate_{split}",
                validation_definitions=[definition],
                actions=actions,
                result_format={"result_format": "SUMMARY"},
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": table})
        results[split] = next(iter(run.run_results.values()))
    return validation_summary(results, tables)


def validation_summary(results: dict, tables: dict[str, pd.DataFrame]) -> dict:
    failed, evaluated = [], 0
    for split, result in results.items():
        for outcome in result.results:
            evaluated += 1
            if not outcome.success:
                config = outcome.expectation_config
                failed.append(
                    {
                        "split": split,
                        "expectation": config.description,
                        "type": config.type,
                        "column": config.kwargs.get("column"),
                        "unexpected_rows": outcome.result.get("unexpected_count"),
                        "observed_value": outcome.result.get("observed_value"),
                        "rows": len(tables[split]),
                    }
                )
    return {"success": not failed, "evaluated": evaluated, "passed": evaluated - len(failed), "failed": failed}


def failures_line(summary: dict) -> str:
    """Every failed expectation in one line: split, name, type and how many rows broke it."""
    parts = []
    for failure in summary["failed"]:
        if failure["unexpected_rows"] is not None:
            broke = f"broken by {failure['unexpected_rows']} of {failure['rows']} rows"
        else:
            broke = f"observed {failure['observed_value']}"
        parts.append(f"{failure['split']}: expectation '{failure['expectation']}' ({failure['type']}) {broke}")
    return f"{len(parts)} expectation(s) failed: " + "; ".join(parts)
