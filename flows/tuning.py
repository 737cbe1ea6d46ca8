"""The tuning pipeline as a Prefect flow: search, train the best configuration as a challenger, and promote it only
if it beats the model in use on the test set and passes the promotion gate (champion/challenger).

The challenger trains as a DVC experiment in a run workspace of its own (flows/training.py's `candidate_run`, the
same as every other training a flow starts), so the model in use and its reports stay in place while it trains.
Promoting saves the champion as an experiment first and then applies the challenger's (`dvc exp apply`, through
flows/apply_experiment.py): params.yaml gets the tuned values, and the workspace the new model and reports.
`python -m flows.apply_experiment <champion experiment>` brings the previous ones back. Run once with
`python -m flows.tuning`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.artifacts import BEST_PARAMS
from flows.command_line import add_workspace_options, one_line_failures, run_flow_command
from flows.dvc_stages import has_commit
from flows.summary import read_metrics
from flows.training import candidate_run, run_stage, training_pipeline
from flows.training_turn import training_turn
from flows.workspace import DEFAULT_WAIT_MINUTES, WORKSPACE
from pipeline.errors import PipelineError
from pipeline.tuning.adoption import read_best

TUNE_STAGE = "tuning/dvc.yaml:tune"
COMPARED = ("accuracy", "macro_f1", "loss")


def decision_markdown(promoted: bool, champion: dict, challenger: dict, best: dict, names: dict[str, str]) -> str:
    rows = []
    for metric in COMPARED:
        old, new = champion[metric], challenger[metric]
        rows.append(f"| {metric} | {old:.4f} | {new:.4f} | {new - old:+.4f} |")
    tuned = "\n".join(f"- `train.{key}`: `{value}`" for key, value in best.items())
    if promoted:
        kept = names["champion_experiment"]
        verdict = "**Promoted**: the challenger's test accuracy beats the model in use's. The previous model"
        verdict += f" is kept as experiment `{kept}` (`python -m flows.apply_experiment {kept}` restores it)."
    else:
        kept = names["challenger_experiment"]
        verdict = "**Kept the model in use**: the challenger does not beat its test accuracy or fails the promotion"
        verdict += " gate (its artifact says which). The challenger"
        verdict += f" is experiment `{kept}` (`python -m flows.apply_experiment {kept}` uses it anyway)."
    table = "| metric | in use | challenger | change |\n|---|---|---|---|\n" + "\n".join(rows)
    return f"# Tuning decision\n\n{verdict}\n\n{table}\n\nTuned train params:\n{tuned}\n"


@flow(name="tuning-pipeline")
@one_line_failures("tuning-pipeline")
def tuning_pipeline(
    workspace: str = str(WORKSPACE), wait_minutes: float = DEFAULT_WAIT_MINUTES, update_from_team: bool = False
) -> dict:
    """Tune, train the best configuration as a challenger, and promote it only if it beats the model in use.

    The whole run is one training turn (flows/training_turn.py); `update_from_team` as in the training pipeline."""
    root = Path(workspace).resolve()
    if not has_commit(root):
        raise PipelineError(f"{root}: the challenger trains as a DVC experiment, which needs a git commit")
    with training_turn(root, f"flow run '{flow_run.name}'", wait_minutes, update_from_team, get_run_logger().info):
        return tune_and_decide(root)


def tune_and_decide(root: Path) -> dict:
    workspace = str(root)
    training_pipeline(workspace=workspace)  # the champion: trained, or any change gated first
    run_stage(TUNE_STAGE, workspace)
    best = read_best(root / BEST_PARAMS)
    champion = read_metrics(root)
    names = {"challenger_experiment": f"challenger-{flow_run.name}", "champion_experiment": f"champion-{flow_run.name}"}
    overrides = {f"train.{key}": value for key, value in best.items()}
    run = candidate_run(
        root,
        overrides,
        names["challenger_experiment"],
        gated=True,
        must_beat=True,
        champion=names["champion_experiment"],
    )
    challenger, promoted = run.metrics, bool(run.decision and run.decision.promoted)
    create_markdown_artifact(
        key="tuning-decision",
        markdown=decision_markdown(promoted, champion, challenger, best, names),
        description="Champion or challenger: the test metrics of both and the decision.",
    )
    return {"promoted": promoted, "champion": champion, "challenger": challenger, "tuned": best, **names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.tuning", description=tuning_pipeline.__doc__)
    add_workspace_options(parser)
    arguments = parser.parse_args(argv)
    result = run_flow_command(
        "tuning-pipeline",
        arguments.workspace,
        arguments.wait_minutes,
        lambda: tuning_pipeline(workspace=arguments.workspace, wait_minutes=arguments.wait_minutes),
    )
    print(f"tuning-pipeline: {'promoted' if result['promoted'] else 'kept the model in use'}")


if __name__ == "__main__":
    main()
