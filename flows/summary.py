"""What a training run publishes: its evaluation metrics beside the previous ones, and where its reports are."""

from __future__ import annotations

import json
from pathlib import Path

from flows.artifacts import EVALUATION_METRICS, PER_CLASS_METRICS, REPORT_PAGES
from flows.dvc_stages import StageRun

OVERALL = ("accuracy", "macro_f1", "loss")
PER_CLASS = ("precision", "recall", "f1")


def read_metrics(workspace: Path) -> dict | None:
    """The evaluation's headline metrics with its per-class scores under "per_class"; None before any evaluation."""
    path = workspace / EVALUATION_METRICS
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    per_class = workspace / PER_CLASS_METRICS
    # Before per_class.json existed, metrics.json held the per-class scores itself.
    if per_class.exists():
        metrics["per_class"] = json.loads(per_class.read_text())
    return metrics


def flatten(metrics: dict) -> dict[tuple[str, str], float]:
    """(scope, metric) -> value, where scope is "overall" or a class name."""
    values = {("overall", name): metrics[name] for name in OVERALL}
    # A fresh clone has the committed headline metrics but not per_class.json, a DVC output: overall figures only.
    for class_name, scores in metrics.get("per_class", {}).items():
        values.update({(class_name, name): scores[name] for name in PER_CLASS})
    return values


def metrics_table(current: dict, previous: dict | None) -> list[dict]:
    """One row per metric: this run's value, the value before the run, and the change."""
    before = flatten(previous) if previous else {}
    rows = []
    for (scope, name), value in flatten(current).items():
        earlier = before.get((scope, name))
        rows.append(
            {
                "scope": scope,
                "metric": name,
                "value": round(value, 4),
                "before this run": "-" if earlier is None else round(earlier, 4),
                "change": "-" if earlier is None else f"{value - earlier:+.4f}",
            }
        )
    return rows


def changes(current: dict, previous: dict | None) -> list[str]:
    """The metrics that moved, in words; the overall ones first."""
    if previous is None:
        return ["No earlier metrics in the workspace: this is the first evaluation."]
    before = flatten(previous)
    moved = [
        f"{scope} {name}: {before[(scope, name)]:.4f} -> {value:.4f} ({value - before[(scope, name)]:+.4f})"
        for (scope, name), value in flatten(current).items()
        if (scope, name) in before and round(value - before[(scope, name)], 6) != 0
    ]
    return moved or ["No metric changed against the run before."]


def summary_markdown(
    reports_dir: Path, stage_runs: list[StageRun], current: dict, previous: dict | None, experiment: str | None
) -> str:
    """`reports_dir` is the run's reports: the workspace's, or those kept of a run with overrides."""
    lines = ["## Stages", "", "| stage | result | seconds |", "|---|---|---|"]
    lines += [f"| {run.stage} | {'ran' if run.ran else 'up to date'} | {run.seconds} |" for run in stage_runs]
    lines += ["", "## Reports", ""]
    for title, relative in REPORT_PAGES.items():
        path = (reports_dir / relative.relative_to("reports")).resolve()
        if path.exists():
            lines.append(f"- [{title}]({path.as_uri()}) `{path}`")
    lines += ["", "## Changes against the model in use before this run", ""]
    lines += [f"- {change}" for change in changes(current, previous)]
    if experiment:
        lines += [
            "",
            "## A run beside the model in use",
            "",
            f"This run trained in a run workspace of its own and is recorded as DVC experiment `{experiment}` "
            f"(`dvc exp show`; `python -m flows.apply_experiment {experiment}` makes it the workspace's). The "
            f"workspace's params.yaml, model and reports change only if the promotion gate promoted it (its "
            f"`promotion-decision` artifact says).",
        ]
    return "\n".join(lines)
