"""What a drift monitor run publishes: the check's verdict, the batch it read, the reference it used and what the
monitor did next, as a Prefect artifact linking the check's own drift page."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.drift.history import read_decision


def drift_markdown(summary: dict, check: Path, in_a_row: int, retrain_after: int) -> str:
    headline = {"drift": "**Dataset drift**", "no drift": "No dataset drift", "inconclusive": "Inconclusive"}
    batch = summary["batch"]
    reference = ", ".join(f"{source} {weight:.0%}" for source, weight in summary["reference"]["sources"].items())
    lines = [
        f"{headline[summary['verdict']]}: {summary['reason']}.",
        "",
        f"**Then**: {summary['decision']}."
        + (f" [Labelling sheet]({Path(summary['labelling_sheet']).as_uri()})" if summary["labelling_sheet"] else ""),
        "",
        f"Batch: `{batch['source']}` ({batch['images']} images, {batch['bytes']:,} bytes, sha256 of its images "
        f"`{batch['sha256'][:16]}`), scenario {batch['scenario']}; reference: {summary['reference']['images']} "
        f"{summary['reference']['split']} images of {reference} ({summary['reference']['chosen']}). Smallest p-value "
        f"{summary['smallest_p_value']:.3g}, threshold {summary['threshold']:.3g} (alpha {summary['alpha']}); "
        f"drifted checks in a row: {in_a_row} (retraining needs {retrain_after}).",
        "",
        f"[Drift page of this check]({(check / 'page.html').as_uri()}) `{check}`",
        "",
        "| test | p-value | effect |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {row['p_value']:.3g} | {row['effect']} |" for name, row in list(summary["tests"].items())[:8]
    ]
    lines += ["", "| predicted class | reference share | batch share |", "|---|---|---|"]
    shares = summary["prediction_drift"]["class_shares"]
    lines += [f"| {name} | {share['reference']} | {share['current']} |" for name, share in shares.items()]
    return "\n".join(lines)


@task(cache_policy=NO_CACHE)
def publish_drift(check: Path, in_a_row: int, retrain_after: int) -> None:
    """The check's verdict and what followed it as an artifact, linking the check's own drift page."""
    summary = {**json.loads((check / "summary.json").read_text()), **read_decision(check)}
    create_markdown_artifact(
        key="drift-summary",
        markdown=drift_markdown(summary, check, in_a_row, retrain_after),
        description="The drift verdict of the checked batch against the reference, test by test.",
    )
