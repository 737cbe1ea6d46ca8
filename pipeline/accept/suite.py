"""The Great Expectations suite of the acceptance gate: the expectations over a batch's table (one row per labelled
image, pipeline/accept/gate.py), their run with Data Docs, and the one line that names what a rejected batch broke."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pipeline.data.validation import Check, validation_summary


def build_checks(max_test_duplicate_share: float, max_duplicate_share: float) -> list[Check]:
    """The expectations every labelled batch must meet, in the order a rejection names them."""
    import great_expectations as gx

    def always(column: str, value: bool, share_allowed: float = 0.0) -> object:
        return gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=[value], mostly=1 - share_allowed)

    checks = [
        Check("at least one labelled image", gx.expectations.ExpectTableRowCountToBeBetween(min_value=1)),
        Check("labelled rows name a file", always("names_file", True)),
        Check("listed files exist", always("file_exists", True)),
        Check("pictures convert", always("converts", True)),
        Check("labels name a known class", always("label_known", True)),
        Check(
            "no near-duplicates of test images",
            always("near_duplicate_of_test", False, max_test_duplicate_share),
        ),
        Check(
            "few repeated images (within the batch or of the pool)",
            always("repeated", False, max_duplicate_share),
        ),
    ]
    for check in checks:
        check.expectation.description = check.name
    return checks


def run_checks(name: str, table: pd.DataFrame, checks: list[Check], docs_dir: Path) -> dict:
    """Validate the batch's table, Data Docs to `docs_dir`; the summary, with an example row and the share allowed
    for each failed expectation."""
    import great_expectations as gx

    context = docs_context(docs_dir)
    suite = context.suites.add(gx.ExpectationSuite(name=f"{name}_images"))
    for check in checks:
        suite.add_expectation(check.expectation)
    batch = context.data_sources.add_pandas("incoming").add_dataframe_asset(name)
    definition = gx.ValidationDefinition(name=name, data=batch.add_batch_definition_whole_dataframe("all"), suite=suite)
    checkpoint = gx.Checkpoint(
        name=f"accept_{name}",
        validation_definitions=[context.validation_definitions.add(definition)],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        # The failing rows' file names and problems, for the one-line rejection.
        result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["file", "problem"]},
    )
    run = context.checkpoints.add(checkpoint).run(batch_parameters={"dataframe": table})
    result = next(iter(run.run_results.values()))
    summary = validation_summary({name: result}, {name: table})
    failed_outcomes = [outcome for outcome in result.results if not outcome.success]
    for failure, outcome in zip(summary["failed"], failed_outcomes, strict=True):
        failure["batch"] = failure.pop("split")
        failure["example"] = example(outcome.result.get("partial_unexpected_index_list") or [])
        failure["share_allowed"] = round(1 - outcome.expectation_config.kwargs.get("mostly", 1), 6)
    return summary


def docs_context(docs_dir: Path):
    """An ephemeral GX context whose only Data Docs site is `docs_dir`."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics leave the machine
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    for site in list(context.list_data_docs_sites()):
        context.delete_data_docs_site(site)  # the default site would write into a temporary folder
    site = {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    context.add_data_docs_site("accept", site)
    return context


def example(unexpected_rows: list[dict]) -> str | None:
    """The first failing row: its file and what is wrong with it."""
    if not unexpected_rows:
        return None
    first = unexpected_rows[0]
    return f"{first['file']}: {first['problem']}" if first.get("problem") else str(first["file"])


def rejection_line(summary: dict) -> str:
    """Every failed expectation: its name, how many rows broke it (with an example row) or what was observed."""
    parts = []
    for failure in summary["failed"]:
        name = failure["expectation"]
        if failure["unexpected_rows"] is None:
            parts.append(f"expectation '{name}' not met ({failure['observed_value']} rows)")
            continue
        allowed = f", at most {failure['share_allowed']:.0%} allowed" if failure["share_allowed"] else ""
        instance = f" (e.g. {failure['example']})" if failure["example"] else ""
        parts.append(
            f"expectation '{name}' broken by {failure['unexpected_rows']} of {failure['rows']} rows{allowed}{instance}"
        )
    return "rejected: " + "; ".join(parts)
