"""labelling_sheet: a drifted check's images as a folder to label (pipeline/accept/labelling.py), for the drift
monitor."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline.accept.labelling import SHEET, Captured, write_labelling_sheet
from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.evaluation.scoring import EvaluateParams
from pipeline.files import atomic_path
from pipeline.model.network import load_model
from pipeline.params import load_params
from pipeline.serving.captures import captured_chunks, read_for_labellers

# A checked chunk's images are named as any .npz batch's: "<chunk file>[<index>]" (pipeline/pictures/batches.py).
CHUNK_IMAGE = re.compile(r"^(?P<chunk>.+\.npz)\[(?P<index>\d+)\]$")


def captured_pictures(traffic: Path, names: list[str]) -> dict[str, Captured]:
    """For each image name that is a captured chunk's picture, its thumbnail and uploaded name."""
    chunks = {chunk.name: chunk for chunk in captured_chunks(traffic)}
    wanted: dict[str, list[tuple[str, int]]] = {}
    for name in names:
        matched = CHUNK_IMAGE.match(name)
        if matched and matched["chunk"] in chunks:
            wanted.setdefault(matched["chunk"], []).append((name, int(matched["index"])))
    captured = {}
    for chunk_name, pictures in wanted.items():
        kept = read_for_labellers(chunks[chunk_name])
        for name, index in pictures:
            captured[name] = Captured(*kept[index])
    return captured


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the model in use (.keras)")
        parser.add_argument("--images", required=True, type=Path, help="a check's kept images (batch.npz)")
        parser.add_argument("--out", required=True, type=Path, help="output folder: PNGs and labels.csv")
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")
        parser.add_argument("--traffic", type=Path, help="the service's capture folder: thumbnails of its pictures")

    def work(arguments):
        params = load_params(EvaluateParams, arguments.params)
        with np.load(arguments.images, allow_pickle=False) as arrays:
            images, names = arrays["images"], [str(name) for name in arrays["names"]]
        probabilities = load_model(arguments.model).predict(images, batch_size=params.batch_size, verbose=0)
        with atomic_path(arguments.out) as folder:
            folder.mkdir()
            captured = captured_pictures(arguments.traffic, names) if arguments.traffic else {}
            class_names = dataset_spec(arguments.dataset).class_names
            write_labelling_sheet(images, names, probabilities, class_names, folder, captured)
        print(f"labelling_sheet: {len(images)} images to label in {arguments.out / SHEET}, least confident first")

    run_command("labelling_sheet", configure, work, argv)


if __name__ == "__main__":
    main()
