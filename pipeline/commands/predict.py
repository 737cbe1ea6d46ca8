"""predict: the trained model's class name and probability for each new image, with the top-k on request, and a
flag on images unlike anything the model was trained on.

    fashion-predict shoes/ photo.jpg batch.npz --top-k 3 --output predictions.csv

Inputs are read and converted exactly as the drift stage reads its batches (pipeline/pictures/batches.py): folders of
pictures, single pictures, .npy/.npz arrays and IDX images files, in any mix. Each picture is cropped to its item
first (--no-crop for pictures already cropped as the training images are). Each image gets an unfamiliarity score
and flag against the threshold the unfamiliarity stage wrote beside the model (pipeline/model/unfamiliarity.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.model.network import load_model
from pipeline.model.prediction import OUTPUT_FORMATS, class_probabilities, load_inputs, prediction_table, write_table
from pipeline.model.unfamiliarity import load as load_unfamiliarity
from pipeline.model.unfamiliarity import scores
from pipeline.model.views import with_unfamiliarity_views
from pipeline.params import read_section
from pipeline.pictures.options import INVERT_CHOICES

FLAG_NOTE = "unfamiliar: probably not a clothing item like the training images"


def configure(parser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("sources", nargs="+", type=Path, help="pictures, folders, .npy/.npz or IDX images files")
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"), help="default: %(default)s")
    parser.add_argument(
        "--unfamiliarity", type=Path, help="the unfamiliarity threshold (default: unfamiliarity.npz beside --model)"
    )
    parser.add_argument("--dataset", help="whose class names to print (default: ingest.dataset in --params)")
    parser.add_argument("--top-k", type=int, default=1, help="how many classes to show per image (default: 1)")
    parser.add_argument("--output", type=Path, help="also write the predictions to this .csv or .json file")
    parser.add_argument(
        "--on-error", choices=("fail", "skip"), default="fail", help="on unreadable files and pictures with no item"
    )
    parser.add_argument(
        "--unfamiliar", choices=("keep", "skip"), default="keep", help="leave out images flagged unfamiliar"
    )
    parser.add_argument("--invert", choices=INVERT_CHOICES, default="auto", help="light backgrounds (docs/drift.md)")
    parser.add_argument("--no-crop", dest="crop", action="store_false", help="pictures are already cropped to the item")
    parser.add_argument("--batch-size", type=int, default=256, help="images per model call (default: 256)")


def check(arguments, class_names: tuple[str, ...]) -> None:
    if arguments.output is not None and arguments.output.suffix not in OUTPUT_FORMATS:
        raise PipelineError(f"{arguments.output}: --output must end in .csv or .json")
    if not 1 <= arguments.top_k <= len(class_names):
        raise PipelineError(f"--top-k must be between 1 and {len(class_names)}, got {arguments.top_k}")
    if arguments.batch_size < 1:
        raise PipelineError(f"--batch-size must be at least 1, got {arguments.batch_size}")


def without_unfamiliar(table):
    """The table without its flagged rows, each named on stderr."""
    for name in table["image"][table["unfamiliar"]]:
        print(f"predict: left out {name}: {FLAG_NOTE}", file=sys.stderr)
    kept = table[~table["unfamiliar"]]
    if kept.empty:
        print(f"predict: none of the {len(table)} images left: every one is flagged unfamiliar", file=sys.stderr)
    return kept


def main(argv: list[str] | None = None) -> None:
    def work(arguments):
        dataset = arguments.dataset or read_section("ingest", arguments.params)["dataset"]
        class_names = dataset_spec(dataset).class_names
        check(arguments, class_names)
        scorer = load_unfamiliarity(arguments.unfamiliarity or arguments.model.with_name("unfamiliarity.npz"))

        def name_skipped(reason: str) -> None:
            print(f"predict: skipped {reason}", file=sys.stderr)

        skip = name_skipped if arguments.on_error == "skip" else None
        batch = load_inputs(arguments.sources, arguments.invert, arguments.crop, skip)
        model = with_unfamiliarity_views(load_model(arguments.model))
        probabilities, *views = class_probabilities(model, batch.images, arguments.batch_size)
        unfamiliarity = scores(scorer, views)
        flags = unfamiliarity > scorer.threshold  # load() refuses a scorer without a threshold
        table = prediction_table(
            batch.names, probabilities, class_names, arguments.top_k, batch.labels, (unfamiliarity, flags)
        )
        if arguments.unfamiliar == "skip":
            table = without_unfamiliar(table)
        if not table.empty:
            shown = table.assign(note=table["unfamiliar"].map({True: FLAG_NOTE, False: ""}))
            print(shown.drop(columns="unfamiliar").to_string(index=False))
        if arguments.output is not None:
            write_table(table, arguments.output)

    run_command("predict", configure, work, argv)


if __name__ == "__main__":
    main()
