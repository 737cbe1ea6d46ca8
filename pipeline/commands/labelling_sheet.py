"""labelling_sheet: a drifted check's images as a folder to label (pipeline/accept/labelling.py), for the drift
monitor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.accept.labelling import SHEET, write_labelling_sheet
from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.evaluation.scoring import EvaluateParams
from pipeline.files import atomic_path
from pipeline.model.network import load_model
from pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the model in use (.keras)")
        parser.add_argument("--images", required=True, type=Path, help="a check's kept images (batch.npz)")
        parser.add_argument("--out", required=True, type=Path, help="output folder: PNGs and labels.csv")
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")

    def work(arguments):
        params = load_params(EvaluateParams, arguments.params)
        with np.load(arguments.images, allow_pickle=False) as arrays:
            images, names = arrays["images"], [str(name) for name in arrays["names"]]
        probabilities = load_model(arguments.model).predict(images, batch_size=params.batch_size, verbose=0)
        with atomic_path(arguments.out) as folder:
            folder.mkdir()
            write_labelling_sheet(images, names, probabilities, dataset_spec(arguments.dataset).class_names, folder)
        print(f"labelling_sheet: {len(images)} images to label in {arguments.out / SHEET}, least confident first")

    run_command("labelling_sheet", configure, work, argv)


if __name__ == "__main__":
    main()
