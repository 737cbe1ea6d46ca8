"""drift: does a batch of images still look like the reference? An Evidently report and a json summary.

Each image becomes a row of features (pipeline/drift_features.py); Evidently compares each feature's distribution in
the batch with the reference (pipeline/drift_check.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from pathlib import Path

from pipeline.cli import run_command
from pipeline.datasets import dataset_spec
from pipeline.drift_check import check_drift
from pipeline.drift_features import load_features
from pipeline.drift_params import DriftParams
from pipeline.files import atomic_path
from pipeline.headline import drift_headline
from pipeline.images import load_batch
from pipeline.lineage import lineage
from pipeline.model import load_model
from pipeline.params import load_params, read_section
from pipeline.shifts import SCENARIOS


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
        parser.add_argument("--reference", required=True, type=Path, help="the reference features (.npz)")
        parser.add_argument("--current", required=True, type=Path, help="the batch to check (see pipeline/images.py)")
        parser.add_argument("--manifest", required=True, type=Path, help="the ingest manifest, for lineage")
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")
        parser.add_argument("--report", required=True, type=Path, help="output: the Evidently report (.html)")
        parser.add_argument("--summary", required=True, type=Path, help="output: the summary (.json)")
        parser.add_argument(
            "--metrics", required=True, type=Path, help="output: verdict, drifted features and batch size (.json)"
        )
        # A check of the monitor simulates a shift without editing params.yaml.
        parser.add_argument("--scenario", choices=("none", *SCENARIOS), help="instead of drift.scenario")
        parser.add_argument("--strength", type=non_negative, help="instead of drift.strength")

    def work(arguments):
        params = load_params(DriftParams, arguments.params)
        shift = {
            key: getattr(arguments, key) for key in ("scenario", "strength") if getattr(arguments, key) is not None
        }
        params = dataclasses.replace(params, **shift)
        batch = load_batch(arguments.current, params.invert)
        model = load_model(arguments.model)
        reference_features = load_features(arguments.reference)
        class_names = dataset_spec(arguments.dataset).class_names
        snapshot, summary = check_drift(model, reference_features, batch, params, class_names)
        summary["batch"]["source"] = str(arguments.current)
        checked = {**read_section("drift", arguments.params), **shift}
        summary["lineage"] = lineage(arguments.manifest, {"drift": checked})
        with contextlib.ExitStack() as stack:
            report = stack.enter_context(atomic_path(arguments.report))
            summary_file = stack.enter_context(atomic_path(arguments.summary))
            metrics_file = stack.enter_context(atomic_path(arguments.metrics))
            snapshot.save_html(str(report))
            summary_file.write_text(json.dumps(summary, indent=2) + "\n")
            metrics_file.write_text(json.dumps(drift_headline(summary), indent=2) + "\n")
        verdict = "DRIFT" if summary["dataset_drift"] else "no drift"
        drifted = ", ".join(summary["drifted_features"]) or "none"
        print(
            f"drift: {verdict}: {summary['drifted_count']} of {summary['feature_count']} features drifted ({drifted})"
        )

    run_command("drift", configure, work, argv)


if __name__ == "__main__":
    main()
