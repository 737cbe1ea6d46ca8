"""drift: does a batch of images still look like the reference? A calibrated verdict, a drift page, an Evidently
report and a json summary, in a folder of their own per check, with a line in the checks' history.

Each image becomes a row of features (pipeline/drift/features.py); pipeline/drift/stat_tests.py tests them against the
reference at false-alarm rate drift.alpha. The DVC stage also copies its check's files to its declared outputs;
the drift monitor runs this same command without them, so its checks never touch what DVC tracks.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import html
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.drift.check import check_drift
from pipeline.drift.history import append_check, read_history
from pipeline.drift.page import render_page
from pipeline.drift.params import DriftParams
from pipeline.drift.references import load_references
from pipeline.drift.shifts import SCENARIOS
from pipeline.drift.sources import UNKNOWN_SOURCE
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.lineage import lineage
from pipeline.model.network import load_model
from pipeline.params import load_params, read_section
from pipeline.pictures.batches import Batch, load_batch
from pipeline.reports.headline import drift_headline

# The check's files, and the option naming where the DVC stage also wants each.
CHECK_FILES = {"page.html": "page", "report.html": "report", "summary.json": "summary", "metrics.json": "metrics"}


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def configure(parser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
    parser.add_argument("--reference", required=True, type=Path, help="the references' folder (drift_reference)")
    parser.add_argument(
        "--current", required=True, type=Path, nargs="+", help="the batch to check; several are pooled into one"
    )
    parser.add_argument("--manifest", required=True, type=Path, help="the ingest manifest, for lineage")
    parser.add_argument("--dataset", required=True, help="dataset name, for its class names")
    parser.add_argument("--checks", required=True, type=Path, help="folder of every check and their history")
    parser.add_argument("--check-id", help="this check's folder name (default: the time, UTC)")
    parser.add_argument("--source", default="stage", choices=("stage", "monitor"), help="who runs the check")
    parser.add_argument("--pooled", nargs="*", default=[], help="ids of the earlier checks whose images are pooled")
    for option in CHECK_FILES.values():
        parser.add_argument(f"--{option}", type=Path, help=f"also copy the check's {option} here (the DVC outputs)")
    # A check of the monitor simulates a shift without editing params.yaml.
    parser.add_argument("--scenario", choices=("none", *SCENARIOS), help="instead of drift.scenario")
    parser.add_argument("--strength", type=non_negative, help="instead of drift.strength")
    parser.add_argument(
        "--current-source", help="the batch's source, or 'unknown' (default: drift.current_source; null is unknown)"
    )
    parser.add_argument(
        "--converted",
        action="store_true",
        help="the batches hold pictures converted already (the prediction service's traffic): never inverted again",
    )


def pooled_batch(sources: list[Path], checks: Path, invert: str, crop: bool, converted: bool = False) -> Batch:
    """The sources as one batch. An earlier check's kept images (<checks>/<id>/batch.npz) were converted when that
    check read them, and so were `converted` batches: they are read as they are, since inverting them again would
    undo it. A kept batch's images keep the names that check gave them (for the labelling sheet)."""

    def kept_by_a_check(source: Path) -> bool:
        return source.name == "batch.npz" and source.resolve().parent.parent == checks.resolve()

    batches = []
    for source in sources:
        kept = kept_by_a_check(source)
        batch = load_batch(source, "never" if converted or kept else invert, crop=crop)
        if kept:
            with np.load(source, allow_pickle=False) as arrays:
                names = [str(name) for name in arrays["names"]] if "names" in arrays.files else batch.names
            batch = Batch(batch.images, batch.labels, names if len(names) == len(batch.names) else batch.names)
        batches.append(batch)
    if len(batches) == 1:
        return batches[0]
    labels = [batch.labels for batch in batches]
    return Batch(
        images=np.concatenate([batch.images for batch in batches]),
        labels=None if any(label is None for label in labels) else np.concatenate(labels),
        names=[name for batch in batches for name in batch.names],
    )


def save_report(snapshot, path: Path, title: str) -> None:
    """Evidently's report, with a line above it naming what was checked: its own page does not show a name."""
    snapshot.save_html(str(path))
    banner = f'<p style="font:16px sans-serif;margin:12px">{html.escape(title)}</p>'
    path.write_text(path.read_text().replace("<body>", f"<body>{banner}", 1))


def write_check(
    folder: Path, check, page_html: str, headline: dict, trend: Path, keep_images: bool, names: list[str]
) -> None:
    """The check's folder, written whole or not at all."""
    with atomic_path(folder) as staging:
        staging.mkdir()
        (staging / "page.html").write_text(page_html)
        save_report(check.snapshot, staging / "report.html", check.title)
        (staging / "summary.json").write_text(json.dumps(check.summary, indent=2) + "\n")
        (staging / "metrics.json").write_text(json.dumps(headline, indent=2) + "\n")
        shutil.copy2(trend, staging / "trend.png")
        # An inconclusive check's images, for the monitor to pool with later ones; a drifted one's, for the
        # labelling sheet the monitor writes when there is no new labelled data to retrain on.
        if keep_images:
            # A shift that resamples the batch (a label shift) leaves its images without their names.
            if len(names) != len(check.images):
                names = [f"image[{index}]" for index in range(len(check.images))]
            with open(staging / "batch.npz", "wb") as file:
                np.savez_compressed(file, images=check.images, names=np.array(names, dtype=str))


def described(sources: list[Path]) -> str:
    """The files checked, in a line: each named, or, for many (a day of the service's traffic chunks), their folder,
    count and first and last."""
    if len(sources) <= 3:
        return " + ".join(str(source) for source in sources)
    folder = os.path.commonpath([str(source) for source in sources])
    return f"{folder}: {len(sources)} files, {sources[0].name} to {sources[-1].name}"


def batch_identity(sources: list[Path], images: np.ndarray) -> dict:
    """What names the batch checked: its files, the sha256 of its images as checked (uint8, after conversion, so the
    same pictures in another format or folder have the same checksum) and its files' size on disk."""
    files = [path for source in sources for path in ([source] if source.is_file() else sorted(source.rglob("*")))]
    return {
        "files": described(sources),
        "sha256": hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest(),
        "bytes": sum(path.stat().st_size for path in files if path.is_file()),
    }


def history_entry(check_id: str, now: datetime, summary: dict, arguments, kept_images: bool) -> dict:
    return {
        "id": check_id,
        "time": now.isoformat(timespec="seconds"),
        "source": arguments.source,
        "batch": summary["batch"]["source"],
        "images": summary["batch"]["images"],
        "scenario": summary["batch"]["scenario"],
        "verdict": summary["verdict"],
        "smallest_p_value": summary["smallest_p_value"],
        "threshold": summary["threshold"],
        "rejected": len(summary["rejected"]),
        "pooled": list(arguments.pooled),
        "batch_file": f"{check_id}/batch.npz" if kept_images else None,
    }


def work(arguments) -> None:
    params = load_params(DriftParams, arguments.params)
    shift = {key: getattr(arguments, key) for key in ("scenario", "strength") if getattr(arguments, key) is not None}
    params = dataclasses.replace(params, **shift)
    batch = pooled_batch(arguments.current, arguments.checks, params.invert, params.crop, arguments.converted)
    class_names = dataset_spec(arguments.dataset).class_names
    loaded = load_references(
        arguments.reference, class_names, params.embedding_components, params.calibration_resamples, params.seed
    )
    source = params.current_source if arguments.current_source is None else arguments.current_source
    source = None if source == UNKNOWN_SOURCE else source
    identity = batch_identity(arguments.current, batch.images)
    title = f"Drift check of {identity['files']} (sha256:{identity['sha256'][:12]}, {len(batch.images)} images)"
    check = check_drift(load_model(arguments.model), loaded, batch, params, class_names, source, title)
    now = datetime.now(UTC)
    check_id = arguments.check_id or f"{now:%Y%m%dT%H%M%SZ}-{arguments.source}"
    folder = arguments.checks / check_id
    if folder.exists():
        raise PipelineError(f"{folder}: a check of that id exists already")
    summary = check.summary
    summary["batch"].update(source=identity["files"], sha256=identity["sha256"], bytes=identity["bytes"])
    summary["check"] = {"id": check_id, "source": arguments.source, "pooled": list(arguments.pooled)}
    # The header names what this check read, not params.yaml's batch (the monitor checks other files).
    checked = {"current_batch": identity["files"], "current_source": source or UNKNOWN_SOURCE, **shift}
    summary["lineage"] = lineage(arguments.manifest, {"drift": {**read_section("drift", arguments.params), **checked}})
    kept_images = summary["verdict"] in ("inconclusive", "drift") and arguments.source == "monitor"
    entry = history_entry(check_id, now, summary, arguments, kept_images)
    history = [*read_history(arguments.checks), entry]
    with tempfile.TemporaryDirectory() as scratch:
        trend = Path(scratch) / "trend.png"
        page_html = render_page(check, check.reference.sample_images, history, summary["lineage"], trend)
        write_check(folder, check, page_html, drift_headline(summary), trend, kept_images, batch.names)
    append_check(arguments.checks, entry)
    for name, option in CHECK_FILES.items():
        if getattr(arguments, option) is not None:
            with atomic_path(getattr(arguments, option)) as staging:
                shutil.copy2(folder / name, staging)
    print(f"drift: {summary['verdict']}: {summary['reason']} ({summary['batch']['images']} images; check {folder})")


def main(argv: list[str] | None = None) -> None:
    run_command("drift", configure, work, argv)


if __name__ == "__main__":
    main()
