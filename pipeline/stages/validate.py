"""validate: a Great Expectations suite over a per-image table of each split; any broken expectation fails the run.

Writes GX Data Docs (reports/validate/data_docs/), a json summary naming every failed expectation, and the number
of expectations passed as the stage's metrics file.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.datasets import SPLITS, load_raw_split
from pipeline.data.validation import ValidateParams, failures_line, image_table, run_suite
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.lineage import lineage
from pipeline.params import load_params, read_section
from pipeline.reports.headline import validation_headline
from pipeline.reports.offline_docs import make_offline


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--raw", required=True, type=Path, help="folder of the four IDX files")
        parser.add_argument("--docs", required=True, type=Path, help="Data Docs output folder")
        parser.add_argument("--summary", required=True, type=Path, help="json summary output file")
        parser.add_argument(
            "--metrics", required=True, type=Path, help="output: the expectations passed, for dvc metrics (.json)"
        )
        parser.add_argument("--lineage", required=True, type=Path, help="output: where the Data Docs came from (.json)")
        parser.add_argument(
            "--web-assets", required=True, type=Path, help="the npm packages of package.json, for offline Data Docs"
        )

    def work(arguments):
        params = load_params(ValidateParams, arguments.params)
        splits = {split: load_raw_split(arguments.raw, split) for split in SPLITS}
        train_images = splits["train"][0]
        tables = {
            split: image_table(images, labels, None if split == "train" else train_images)
            for split, (images, labels) in splits.items()
        }
        record = lineage(arguments.raw / "manifest.json", {"validate": read_section("validate", arguments.params)})
        outputs = (arguments.docs, arguments.summary, arguments.metrics, arguments.lineage)
        with contextlib.ExitStack() as stack:
            docs_dir, summary_file, metrics_file, lineage_file = (
                stack.enter_context(atomic_path(path)) for path in outputs
            )
            summary = run_suite(tables, params, docs_dir)
            make_offline(docs_dir, arguments.web_assets)
            summary_file.write_text(json.dumps(summary, indent=2) + "\n")
            metrics_file.write_text(json.dumps(validation_headline(summary), indent=2) + "\n")
            lineage_file.write_text(json.dumps(record, indent=2) + "\n")
        # The report of a failed validation is complete and kept, so the user can read what broke.
        if not summary["success"]:
            raise PipelineError(failures_line(summary))
        print(f"validate: {summary['passed']}/{summary['evaluated']} expectations passed")

    run_command("validate", configure, work, argv)


if __name__ == "__main__":
    main()
