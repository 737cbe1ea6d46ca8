"""score_sources: a model's accuracy on each new source's test slice, for the promotion gate.

The gate scores the model in use on a candidate's slices (which grow as batches arrive) without touching the
workspace: it reads the model file and writes one json file.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.pool import read_slices
from pipeline.evaluation.scoring import EvaluateParams, source_accuracies
from pipeline.files import atomic_path
from pipeline.model.network import load_model
from pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the model to score (.keras)")
        parser.add_argument("--slices", required=True, type=Path, help="folder of the new sources' test slices")
        parser.add_argument("--out", required=True, type=Path, help="output: accuracy per source (.json)")

    def work(arguments):
        params = load_params(EvaluateParams, arguments.params)
        slices = read_slices(arguments.slices)
        scores = source_accuracies(load_model(arguments.model), slices, params.batch_size) if slices else {}
        with atomic_path(arguments.out) as out:
            out.write_text(json.dumps(scores, indent=2) + "\n")
        print(
            "score_sources: "
            + (", ".join(f"{name} {s['accuracy']:.4f}" for name, s in scores.items()) or "no new sources")
        )

    run_command("score_sources", configure, work, argv)


if __name__ == "__main__":
    main()
