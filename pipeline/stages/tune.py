"""tune: search the train stage's hyperparameters with KerasTuner: grid, random, Bayesian optimisation or Hyperband.

The search state lives in --state: a rerun of the same search (same tune and train sections, same data) goes on from
the last finished trial, and so does one with a larger budget (max_trials, max_minutes); any other change starts
anew. With `tune.workers` above 1 this command also runs as the chief and
the workers of a distributed search (pipeline/tuning/workers.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.preprocessing import load_prepared
from pipeline.files import atomic_path
from pipeline.lineage import lineage
from pipeline.model.training import prepare_checkpoint_dir, run_fingerprint
from pipeline.params import load_params, read_section
from pipeline.process_guard import held_state_folder
from pipeline.tuning.objectives import best_score
from pipeline.tuning.report import write_report
from pipeline.tuning.results import best_train_values, trials_table, write_best_params
from pipeline.tuning.search_space import TuneParams
from pipeline.tuning.tuner import SearchClock, make_tuner, run_search, worker_id
from pipeline.tuning.workers import run_distributed

# tune keys that leave the search itself as it was (see work()).
NOT_THE_SEARCH = ("max_trials", "max_minutes", "workers", "final_epochs")


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--prepared", required=True, type=Path, help="the prepared splits' folder")
        parser.add_argument("--manifest", required=True, type=Path, help="the ingest manifest, for lineage")
        parser.add_argument("--state", required=True, type=Path, help="the search state, kept to resume a search")
        parser.add_argument("--out", required=True, type=Path, help="output folder: trials, best params, report")

    def work(arguments):
        params = load_params(TuneParams, arguments.params)
        split_files = [arguments.prepared / "train.npz", arguments.prepared / "val.npz"]
        train_split, val_split = (load_prepared(path) for path in split_files)
        if worker_id() != "main":  # a chief or worker process of a distributed search: search, nothing else
            run_search(params, arguments.state, train_split, val_split)
            return
        with held_state_folder(arguments.state):  # two searches must never write one state
            tune_and_report(arguments, params, split_files, train_split, val_split)

    def tune_and_report(arguments, params, split_files, train_split, val_split):
        sections = {name: read_section(name, arguments.params) for name in ("tune", "train")}
        # The state folder is kept the way the train stage keeps its checkpoint: only for the same search. Its
        # budget, how many workers run it and how long the adopted model trains do not change the search: raising
        # max_trials or max_minutes continues a finished or interrupted search with the trials it has.
        tune = {key: value for key, value in sections["tune"].items() if key not in NOT_THE_SEARCH}
        search = {**sections, "tune": tune}
        if prepare_checkpoint_dir(arguments.state, run_fingerprint(search, split_files)):
            print(f"tune: resuming the search in {arguments.state}")
        if params.workers > 1:
            command = [sys.executable, "-m", "pipeline.stages.tune", *(argv or sys.argv[1:])]
            run_distributed(command, params.workers)
            tuner, clock = make_tuner(params, arguments.state, train_split, val_split)  # reads the finished search
        else:
            tuner, clock = run_search(params, arguments.state, train_split, val_split)
        write_outputs(arguments.out, tuner, clock, params, lineage(arguments.manifest, sections))

    run_command("tune", configure, work, argv)


def write_outputs(out: Path, tuner, clock: SearchClock, params: TuneParams, record: dict) -> None:
    table = trials_table(tuner, clock, params)
    best = best_train_values(tuner, params)
    score = best_score(table[params.objective], params.objective)
    with atomic_path(out) as out_dir:
        out_dir.mkdir()
        table.to_csv(out_dir / "trials.csv", index=False)
        write_best_params(out_dir / "best_params.yaml", best, score, len(table), params)
        (out_dir / "lineage.json").write_text(json.dumps(record, indent=2) + "\n")
        write_report(out_dir, table, best, params, record)
    spent = f"{clock.spent / 60:.1f} min of search"
    print(f"tune: best {params.objective} {score:.4f} of {len(table)} trials; {spent}; {out / 'best_params.yaml'}")


if __name__ == "__main__":
    main()
