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


def shown_value(value) -> str:
    """A table cell: floats to four significant digits, seconds whole, missing values blank."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(out_dir: Path, trials: pd.DataFrame, best: dict, params, lineage: dict) -> None:
    # A one-value list sets its key for every trial: it has no plot and no column, only a line in the summary.
    searched = [dimension.name for dimension in params.space.dimensions if not dimension.is_fixed]
    fixed = [dimension for dimension in params.space.dimensions if dimension.is_fixed]
    ascending = not is_maximised(params.objective)
    ranked = trials.sort_values(params.objective, ascending=ascending, na_position="last")
    ranked = ranked.drop(columns=[dimension.name for dimension in fixed])
    ranked["seconds"] = ranked["seconds"].round()
    # The objective with every digit the ranking shows, so that neighbouring trials read apart.
    ranked[params.objective] = ranked[params.objective].map(lambda score: "" if pd.isna(score) else f"{score:.4f}")
    spent = trials["seconds"].sum() / 60
    summary = (
        f"<p>{params.strategy} search, {len(trials)} trials, {spent:.1f} of {params.max_minutes:g} minutes of "
        f"search time; objective {params.objective} on the validation split; up to {params.epochs} epochs a trial."
        " Adopt the best configuration into params.yaml with <code>python -m pipeline.commands.adopt</code>.</p>"
    )
    if fixed:
        held = ", ".join(f"{dimension.name} {dimension.choices[0]}" for dimension in fixed)
        summary += f"<p>Held fixed in every trial: {held}.</p>"
    best_table = table([[key, str(value)] for key, value in best.items()], ["train param", "best value"])
    sections = [("Best configuration", summary + best_table)]
    if searched:
        plot_path = out_dir / "objective_by_hyperparameter.png"
        plot_objective(trials, searched, params.objective, plot_path)
        sections.append(("Objective against each hyperparameter", image_tag(plot_path, "objective by hyperparameter")))
    rows = [[shown_value(value) for value in row] for row in ranked.astype(object).values.tolist()]
    sections.append(("Trials, best first", table(rows, [name.replace("_", " ") for name in ranked.columns])))
    (out_dir / "report.html").write_text(page("Hyperparameter tuning", lineage, sections))
