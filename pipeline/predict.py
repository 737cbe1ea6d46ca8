"""predict: the trained model's class name and probability for each new image, with the top-k on request.

    fashion-predict shoes/ photo.jpg batch.npz --top-k 3 --output predictions.csv

Inputs are read and converted exactly as the drift stage reads its batches (pipeline/images.py): folders of
PNG/JPEG pictures, single pictures, .npy/.npz arrays and IDX images files, in any mix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cli import run_stage
from pipeline.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.evaluate import load_model
from pipeline.files import atomic_path
from pipeline.images import INVERT_CHOICES, Batch, load_batch
from pipeline.params import read_section

OUTPUT_FORMATS = (".csv", ".json")


def load_inputs(sources: list[Path], invert: str, skip_unreadable: bool) -> tuple[Batch, list[str]]:
    """All sources as one batch, and why each unreadable file was skipped (only with `skip_unreadable`)."""
    batches, skipped = [], []
    for source in sources:
        try:
            batch = load_batch(source, invert, skip_unreadable)
        except PipelineError as error:
            if not skip_unreadable:
                raise
            skipped.append(str(error))
            continue
        batches.append(batch)
        skipped.extend(batch.skipped)
    if not batches:
        raise PipelineError(f"no readable images in {', '.join(map(str, sources))}")
    # Labels are kept only when every source has them, so each row's label belongs to its image.
    labels = [batch.labels for batch in batches]
    joined = Batch(
        np.concatenate([batch.images for batch in batches]),
        None if any(part is None for part in labels) else np.concatenate(labels),
        [name for batch in batches for name in batch.names],
    )
    return joined, skipped


def class_probabilities(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's probabilities for each image. A batch that fits in one call skips `predict()`'s set-up, which
    costs 30 times the model itself for a single image (40 ms against 1.4 ms on 2 cores)."""
    if len(images) <= batch_size:
        return np.asarray(model.predict_on_batch(images))
    return model.predict(images, batch_size=batch_size, verbose=0)


def prediction_table(
    names: list[str], probabilities: np.ndarray, class_names: tuple[str, ...], top_k: int, labels=None
) -> pd.DataFrame:
    """One row per image: its name, the `top_k` classes by probability (most likely first) and its label if known."""
    ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    classes = np.array(class_names)
    table = pd.DataFrame({"image": names})
    for rank in range(top_k):
        suffix = "" if rank == 0 else f"_{rank + 1}"
        table[f"class{suffix}"] = classes[ranked[:, rank]]
        table[f"probability{suffix}"] = np.round(probabilities[np.arange(len(names)), ranked[:, rank]], 6)
    if labels is not None:
        table["label"] = classes[np.asarray(labels, dtype=np.int64)]
    return table


def write_table(table: pd.DataFrame, path: Path) -> None:
    """CSV or JSON (a list of records) by the file's suffix, replacing any earlier file only when complete."""
    with atomic_path(path) as staging:
        if path.suffix == ".csv":
            table.to_csv(staging, index=False)
        else:
            staging.write_text(json.dumps(table.to_dict(orient="records"), indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.description = __doc__.splitlines()[0]
        parser.add_argument("sources", nargs="+", type=Path, help="pictures, folders, .npy/.npz or IDX images files")
        parser.add_argument("--model", type=Path, default=Path("models/model.keras"), help="default: %(default)s")
        parser.add_argument("--dataset", help="whose class names to print (default: ingest.dataset in --params)")
        parser.add_argument("--top-k", type=int, default=1, help="how many classes to show per image (default: 1)")
        parser.add_argument("--output", type=Path, help="also write the predictions to this .csv or .json file")
        parser.add_argument("--on-error", choices=("fail", "skip"), default="fail", help="on unreadable files")
        parser.add_argument("--invert", choices=INVERT_CHOICES, default="auto", help="light backgrounds (see README)")
        parser.add_argument("--batch-size", type=int, default=256, help="images per model call (default: 256)")

    def work(arguments):
        if arguments.output is not None and arguments.output.suffix not in OUTPUT_FORMATS:
            raise PipelineError(f"{arguments.output}: --output must end in .csv or .json")
        dataset = arguments.dataset or read_section("ingest", Path(arguments.params))["dataset"]
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

    run_stage("predict", configure, work, argv)


if __name__ == "__main__":
    main()
