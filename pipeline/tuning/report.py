"""The tuning report: trials ranked, the objective against each hyperparameter, and the best configuration."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.plots import headless_pyplot
from pipeline.reports.html import image_tag, page, table
from pipeline.tuning.objectives import is_maximised


def plot_objective(trials: pd.DataFrame, names: list[str], objective: str, path: Path) -> None:
    """One panel per hyperparameter: each finished trial's objective at its value, the best in red."""
    plt = headless_pyplot()
    finished = trials.dropna(subset=[objective])
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    best = finished[objective].idxmax() if is_maximised(objective) else finished[objective].idxmin()
    for axis, name in zip(axes.flat, names, strict=False):
        values = finished[name]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        positions = values if numeric else values.astype(str)
        axis.scatter(positions, finished[objective], alpha=0.7)
        axis.scatter([positions[best]], [finished.loc[best, objective]], color="red", label="best")
        if numeric and values.min() > 0 and values.max() / values.min() > 20:
            axis.set_xscale("log")
        axis.set_xlabel(name)
        axis.set_ylabel(objective)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_report(out_dir: Path, trials: pd.DataFrame, best: dict, params, lineage: dict) -> None:
    names = [dimension.name for dimension in params.space.dimensions]
    ascending = not is_maximised(params.objective)
    ranked = trials.sort_values(params.objective, ascending=ascending, na_position="last")
    plot_path = out_dir / "objective_by_hyperparameter.png"
    plot_objective(trials, names, params.objective, plot_path)
    spent = trials["seconds"].sum() / 60
    summary = (
        f"<p>{params.strategy} search, {len(trials)} trials, {spent:.1f} of {params.max_minutes:g} minutes of "
        f"search time; objective {params.objective} on the validation split; up to {params.epochs} epochs a trial."
        " Adopt the best configuration into params.yaml with <code>python -m pipeline.commands.adopt</code>.</p>"
    )
    best_table = table([[key, str(value)] for key, value in best.items()], ["train param", "best value"])
    shown = ranked.astype(object).where(ranked.notna(), "")
    trials_html = table(shown.values.tolist(), list(ranked.columns))
    (out_dir / "report.html").write_text(
        page(
            "Hyperparameter tuning",
            lineage,
            [
                ("Best configuration", summary + best_table),
                ("Objective against each hyperparameter", image_tag(plot_path, "objective by hyperparameter")),
                ("Trials, best first", trials_html),
            ],
        )
    )
