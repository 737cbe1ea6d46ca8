"""preprocess: raw IDX to NHWC uint8 arrays with a stratified, seeded validation split, plus sample pictures.

With accepted new data in the pool (data/pool), its images join training and validation, except each new source's
fixed test slice, written to <out>/slices/<source>.npz (pipeline/data/pool.py); <out>/pool.json names the batches.

Images stay 0-255 uint8: scaling by 1/255 happens once, inside the model, so a served model takes the same raw
images the pipeline ingested.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec, load_raw_split
from pipeline.data.pool import POOL_RECORD, SLICES, batches_line, joined, read_pool, split_pool
from pipeline.data.preprocessing import (
    PreprocessParams,
    reserved_indices,
    save_arrays,
    save_sample_pictures,
    stratified_split,
    to_nhwc,
)
from pipeline.files import atomic_path
from pipeline.lineage import lineage
from pipeline.params import load_params, read_section


def original_split(labels: np.ndarray, params: PreprocessParams) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) into the training file, leaving out the reserved images."""
    kept = np.setdiff1d(np.arange(len(labels)), reserved_indices(len(labels), params.reserve_images, params.seed))
    train_part, val_part = stratified_split(labels[kept], params.val_fraction, params.seed)
    return kept[train_part], kept[val_part]


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--raw", required=True, type=Path, help="folder of the four IDX files")
        parser.add_argument("--out", required=True, type=Path, help="output folder for train/val/test .npz")
        parser.add_argument("--pictures", required=True, type=Path, help="output folder for the sample pictures")
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")
        parser.add_argument("--pool", required=True, type=Path, help="the accepted pool's folder (data/pool)")

    def work(arguments):
        params = load_params(PreprocessParams, arguments.params)
        class_names = dataset_spec(arguments.dataset).class_names
        train_images, train_labels = load_raw_split(arguments.raw, "train")
        test_images, test_labels = load_raw_split(arguments.raw, "test")
        train_images, test_images = to_nhwc(train_images), to_nhwc(test_images)
        train_index, val_index = original_split(train_labels, params)
        pool = split_pool(
            read_pool(arguments.pool),
            params.val_fraction,
            params.source_test_images,
            params.source_test_share,
            params.seed,
        )
        train = joined([(train_images[train_index], train_labels[train_index]), pool.train])
        val = joined([(train_images[val_index], train_labels[val_index]), pool.val])
        with atomic_path(arguments.out) as out_dir:
            (out_dir / SLICES).mkdir(parents=True)
            save_arrays(out_dir / "train.npz", *train)
            save_arrays(out_dir / "val.npz", *val)
            save_arrays(out_dir / "test.npz", test_images, test_labels)
            for source, (images, labels) in pool.slices.items():
                save_arrays(out_dir / SLICES / f"{source}.npz", images, labels)
            (out_dir / POOL_RECORD).write_text(json.dumps({"batches": pool.record}, indent=2) + "\n")
        with atomic_path(arguments.pictures) as pictures_dir:
            pictures_dir.mkdir()
            save_sample_pictures(train_images, train_labels, class_names, pictures_dir)
            params_used = {"preprocess": read_section("preprocess", arguments.params)}
            record = lineage(arguments.raw / "manifest.json", params_used, batches_line(pool.record))
            (pictures_dir / "lineage.json").write_text(json.dumps(record, indent=2) + "\n")
        new_data = "".join(f", {source} test slice {len(labels)}" for source, (_, labels) in pool.slices.items())
        print(
            f"preprocess: train {len(train[1])}, val {len(val[1])}, test {len(test_labels)} images{new_data}"
            f" ({len(pool.record)} accepted batch(es) in the pool)"
        )

    run_command("preprocess", configure, work, argv)


if __name__ == "__main__":
    main()
