"""How fast the predict command classifies images, on the repository's trained model and test images.

Prints images per second, each beside a bare reference measured in the same run (`model.predict` on an array
already in memory). The command's work includes the unfamiliarity score of each image (the views it reads come from
the same model call):
- batch: the 10,000 test images from an .npz file, as `fashion-predict test.npz` reads and classifies them;
- pictures: 1,000 test images as PNG files in a folder (decoding and the conversion rule included);
- single image: one PNG at a time, in a process that has the model loaded (bare: `predict_on_batch`);
- and the wall time of a whole `fashion-predict one.png` process (Python, TensorFlow and model loading included).
Run `dvc repro` first (it needs models/model.keras and data/prepared/).

    python bench/predict_speed.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from workspace import REPO_ROOT, timed

from pipeline.data.preprocessing import load_arrays
from pipeline.model.network import load_model
from pipeline.model.prediction import class_probabilities
from pipeline.model.unfamiliarity import load as load_unfamiliarity
from pipeline.model.unfamiliarity import scores
from pipeline.model.views import with_unfamiliarity_views
from pipeline.pictures.batches import load_batch

BATCH_SIZE = 256  # the command's default
PICTURES = 1000
SINGLES = 200


def best_seconds(work, repeats: int) -> float:
    """The fastest of `repeats` runs: the least disturbed by whatever else the machine is doing."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return min(timings)


def show(label: str, images: int, seconds: float, bare_seconds: float) -> None:
    print(
        f"{label}: {images / seconds:,.0f} images/s (bare {images / bare_seconds:,.0f} images/s, "
        f"{seconds / bare_seconds:.2f}x the bare time)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    model = load_model(REPO_ROOT / "models" / "model.keras")
    command_model = with_unfamiliarity_views(model)
    scorer = load_unfamiliarity(REPO_ROOT / "models" / "unfamiliarity.npz")
    test_file = REPO_ROOT / "data" / "prepared" / "test.npz"
    images, _ = load_arrays(test_file)

    def predict_file(source: Path):
        probabilities, *views = class_probabilities(command_model, load_batch(source).images, BATCH_SIZE)
        return probabilities, scores(scorer, views)

    for model_to_build in (model, command_model):  # build both call paths of both models once
        class_probabilities(model_to_build, images[: BATCH_SIZE * 2], BATCH_SIZE)
        class_probabilities(model_to_build, images[:1], BATCH_SIZE)
    bare = best_seconds(lambda: model.predict(images, batch_size=BATCH_SIZE, verbose=0), repeats)
    batch = best_seconds(lambda: predict_file(test_file), repeats)
    show(f"batch ({len(images):,} images from .npz)", len(images), batch, bare)

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "pictures"
        folder.mkdir()
        for index in range(PICTURES):
            Image.fromarray(images[index, ..., 0]).save(folder / f"{index:04d}.png")
        bare = best_seconds(lambda: model.predict(images[:PICTURES], batch_size=BATCH_SIZE, verbose=0), repeats)
        show(f"pictures ({PICTURES:,} PNG files)", PICTURES, best_seconds(lambda: predict_file(folder), repeats), bare)

        singles = sorted(folder.iterdir())[:SINGLES]
        single = best_seconds(lambda: [predict_file(path) for path in singles], repeats)
        one_by_one = [images[index : index + 1] for index in range(SINGLES)]
        bare = best_seconds(lambda: [model.predict_on_batch(image) for image in one_by_one], repeats)
        show(f"single image (one PNG per call, {SINGLES} calls)", SINGLES, single, bare)
        print(f"  {single / SINGLES * 1000:.1f} ms per image (bare {bare / SINGLES * 1000:.1f} ms)")

        command = [sys.executable, "-m", "pipeline.commands.predict", "--model", "models/model.keras", str(singles[0])]
        process = statistics.median(timed(command, REPO_ROOT) for _ in range(repeats))
        print(f"whole command for one picture (new process, TensorFlow and model loading included): {process:.1f} s")


if __name__ == "__main__":
    main()
