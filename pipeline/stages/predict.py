"""predict: the trained model's class name and probability for each new image, with the top-k on request.

    fashion-predict shoes/ photo.jpg batch.npz --top-k 3 --output predictions.csv

Inputs are read and converted exactly as the drift stage reads its batches (pipeline/images.py): folders of
PNG/JPEG pictures, single pictures, .npy/.npz arrays and IDX images files, in any mix.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.cli import run_command
from pipeline.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.images import INVERT_CHOICES
from pipeline.model import load_model
from pipeline.params import read_section
from pipeline.prediction import OUTPUT_FORMATS, class_probabilities, load_inputs, prediction_table, write_table


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.description = __doc__.splitlines()[0]
        parser.add_argument("sources", nargs="+", type=Path, help="pictures, folders, .npy/.npz or IDX images files")
        parser.add_argument("--model", type=Path, default=Path("models/model.keras"), help="default: %(default)s")
        parser.add_argument("--dataset", help="whose class names to print (default: ingest.dataset in --params)")
        parser.add_argument("--top-k", type=int, default=1, help="how many classes to show per image (default: 1)")
        parser.add_argument("--output", type=Path, help="also write the predictions to this .csv or .json file")
        parser.add_argument("--on-error", choices=("fail", "skip"), default="fail", help="on unreadable files")
        parser.add_argument(
            "--invert", choices=INVERT_CHOICES, default="auto", help="light backgrounds (see docs/drift.md)"
        )
        parser.add_argument("--batch-size", type=int, default=256, help="images per model call (default: 256)")

    def work(arguments):
        if arguments.output is not None and arguments.output.suffix not in OUTPUT_FORMATS:
            raise PipelineError(f"{arguments.output}: --output must end in .csv or .json")
        dataset = arguments.dataset or read_section("ingest", arguments.params)["dataset"]
        class_names = dataset_spec(dataset).class_names
        if not 1 <= arguments.top_k <= len(class_names):
            raise PipelineError(f"--top-k must be between 1 and {len(class_names)}, got {arguments.top_k}")
        if arguments.batch_size < 1:
            raise PipelineError(f"--batch-size must be at least 1, got {arguments.batch_size}")
        batch, skipped = load_inputs(arguments.sources, arguments.invert, arguments.on_error == "skip")
        for reason in skipped:
            print(f"predict: skipped {reason}", file=sys.stderr)
        model = load_model(arguments.model)
        probabilities = class_probabilities(model, batch.images, arguments.batch_size)
        table = prediction_table(batch.names, probabilities, class_names, arguments.top_k, batch.labels)
        print(table.to_string(index=False))
        if arguments.output is not None:
            write_table(table, arguments.output)

    run_command("predict", configure, work, argv)


if __name__ == "__main__":
    main()
