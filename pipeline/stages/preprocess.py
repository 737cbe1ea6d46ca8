"""preprocess: raw IDX to NHWC uint8 arrays with a stratified, seeded validation split, plus sample pictures.

Images stay 0-255 uint8: scaling by 1/255 happens once, inside the model, so a served model takes the same raw
images the pipeline ingested.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.cli import run_command
from pipeline.datasets import dataset_spec, load_raw_split
from pipeline.files import atomic_path
from pipeline.lineage import lineage
from pipeline.params import load_params, read_section
from pipeline.prepared import PreprocessParams, save_arrays, save_sample_pictures, stratified_split, to_nhwc


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--raw", required=True, type=Path, help="folder of the four IDX files")
        parser.add_argument("--out", required=True, type=Path, help="output folder for train/val/test .npz")
        parser.add_argument("--pictures", required=True, type=Path, help="output folder for the sample pictures")
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")

    def work(arguments):
        params = load_params(PreprocessParams, arguments.params)
        class_names = dataset_spec(arguments.dataset).class_names
        train_images, train_labels = load_raw_split(arguments.raw, "train")
        test_images, test_labels = load_raw_split(arguments.raw, "test")
        train_images, test_images = to_nhwc(train_images), to_nhwc(test_images)
        train_index, val_index = stratified_split(train_labels, params.val_fraction, params.seed)
        with atomic_path(arguments.out) as out_dir:
            out_dir.mkdir()
            save_arrays(out_dir / "train.npz", train_images[train_index], train_labels[train_index])
            save_arrays(out_dir / "val.npz", train_images[val_index], train_labels[val_index])
            save_arrays(out_dir / "test.npz", test_images, test_labels)
        with atomic_path(arguments.pictures) as pictures_dir:
            pictures_dir.mkdir()
            save_sample_pictures(train_images, train_labels, class_names, pictures_dir)
            params_used = {"preprocess": read_section("preprocess", arguments.params)}
            record = lineage(arguments.raw / "manifest.json", params_used)
            (pictures_dir / "lineage.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"preprocess: train {len(train_index)}, val {len(val_index)}, test {len(test_labels)} images")

    run_command("preprocess", configure, work, argv)


if __name__ == "__main__":
    main()
