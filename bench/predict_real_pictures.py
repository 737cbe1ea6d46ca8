"""How the predict command does on pictures as people take them, and how well it tells what is not clothing.

In one run, on the repository's trained model, its unfamiliarity threshold (models/unfamiliarity.npz) and test set:
1. accuracy on test images made into photos (bench/product_photos.py): the item filling 100%, 70%, 50%, 40% and
   30% of the frame's width, on plain, gradient, noisy and shadowed backgrounds, saved as PNG and as JPEG, read
   with the crop (predict's default) and without it (--no-crop); beside the accuracy on the test images as given;
2. the share flagged unfamiliar among the clean test images and among those photos (with the crop);
3. the AUROC of the unfamiliarity score between the clean test images and pictures that are not clothing
   (bench/foreign_pictures.py: handwritten digits, letters, random noise, crops of natural photographs), and the
   share of each flagged.
Run `dvc repro` first (it needs models/, data/prepared/).

    python bench/predict_real_pictures.py [--images N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from foreign_pictures import font_letters, handwritten_digits, natural_photos, random_noise
from PIL import Image
from product_photos import BACKGROUNDS, FILLS, JPEG_QUALITY, product_photo
from sklearn.metrics import roc_auc_score
from workspace import REPO_ROOT

from pipeline.data.preprocessing import load_arrays
from pipeline.model.network import load_model
from pipeline.model.unfamiliarity import load as load_unfamiliarity
from pipeline.model.unfamiliarity import scores
from pipeline.model.views import with_unfamiliarity_views
from pipeline.pictures.batches import load_batch

FORMATS = ("png", "jpeg")


class Scorer:
    """The model's class and the unfamiliarity score of each image, as fashion-predict computes them."""

    def __init__(self, root: Path):
        self.model = with_unfamiliarity_views(load_model(root / "models" / "model.keras"))
        self.unfamiliarity = load_unfamiliarity(root / "models" / "unfamiliarity.npz")

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, *views = self.model.predict(images, batch_size=512, verbose=0)
        return probabilities.argmax(axis=1), scores(self.unfamiliarity, views)


def photo_folder(images: np.ndarray, fill: float, kind: str, file_format: str, folder: Path, seed: int) -> Path:
    """The images as photo files in a new folder; the same seed places every fill and format alike."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for index, image in enumerate(images):
        photo = Image.fromarray(product_photo(image, fill, kind, rng))
        if file_format == "jpeg":
            photo.save(folder / f"{index:05d}.jpg", quality=JPEG_QUALITY)
        else:
            photo.save(folder / f"{index:05d}.png")
    return folder


def photo_results(score, images, labels, seed: int, scratch: Path) -> dict:
    """(kind, fill, format, crop) -> (accuracy, share flagged unfamiliar), over every photo."""
    results = {}
    for kind in BACKGROUNDS:
        started = time.perf_counter()
        for fill in FILLS:
            for file_format in FORMATS:
                folder = photo_folder(images, fill, kind, file_format, scratch / f"{kind}-{fill}-{file_format}", seed)
                for crop in (True, False):
                    # A photo where nothing stands out is skipped by name, and counts as a wrong answer.
                    batch = load_batch(folder, on_skip=lambda reason: None, crop=crop)
                    kept = np.array([int(Path(name).stem) for name in batch.names])
                    predicted, unfamiliarity = score(batch.images)
                    correct = (predicted == labels[kept]).sum()
                    threshold = score.unfamiliarity.threshold
                    results[kind, fill, file_format, crop] = (correct / len(images), (unfamiliarity > threshold).mean())
        print(f"  ({kind}: {time.perf_counter() - started:.0f} s)", flush=True)
    return results


def print_accuracy(results: dict, baseline: float) -> None:
    print(f"\nAccuracy on photos (test images as given: {baseline:.1%}); columns: crop/no crop, PNG/JPEG")
    header = "".join(f"{f'{crop}/{fmt}':>16}" for crop in ("crop", "no crop") for fmt in FORMATS)
    for kind in BACKGROUNDS:
        print(f"{kind:<10} fill{header}   drop from 100%, with crop")
        for fill in FILLS:
            cells = [results[kind, fill, fmt, crop][0] for crop in (True, False) for fmt in FORMATS]
            gap = max(results[kind, 1.0, fmt, True][0] - results[kind, fill, fmt, True][0] for fmt in FORMATS)
            print(f"{'':<10} {fill:>4.0%}" + "".join(f"{cell:>16.1%}" for cell in cells) + f"{gap * 100:>+10.1f} pt")


def print_flagged(results: dict, test_share: float, rate: float) -> None:
    print(f"\nFlagged unfamiliar (set on validation images to {rate:.0%}): clean test images {test_share:.1%}")
    print(f"{'photos, with crop':<18}" + "".join(f"{fill:>9.0%}" for fill in FILLS) + f"{'all':>9}")
    for kind in BACKGROUNDS:
        shares = [np.mean([results[kind, fill, fmt, True][1] for fmt in FORMATS]) for fill in FILLS]
        print(f"{kind:<18}" + "".join(f"{share:>9.1%}" for share in shares) + f"{np.mean(shares):>9.1%}")
    every = [results[key][1] for key in results if key[3]]
    print(f"{'every photo':<18}{np.mean(every):>9.1%} (the worst cell {max(every):.1%})")


def print_foreign(score, test_scores: np.ndarray, seed: int) -> None:
    print("\nUnfamiliarity score against pictures that are not clothing (negatives: the clean test images)")
    threshold = score.unfamiliarity.threshold
    sets = {
        "handwritten digits": handwritten_digits(),
        "letters": font_letters(seed),
        "random noise": random_noise(seed),
        "natural photos": natural_photos(seed),
    }
    for name, images in sets.items():
        _, foreign = score(images)
        truth = np.r_[np.zeros(len(test_scores)), np.ones(len(foreign))]
        auroc = roc_auc_score(truth, np.r_[test_scores, foreign])
        print(f"{name:<20} {len(images):>5} images   AUROC {auroc:.3f}   flagged {(foreign > threshold).mean():.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="test images made into photos (default: 400)")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    started = time.perf_counter()
    score = Scorer(REPO_ROOT)
    test_images, test_labels = load_arrays(REPO_ROOT / "data" / "prepared" / "test.npz")
    test_predicted, test_scores = score(test_images)
    chosen = np.random.default_rng(arguments.seed).choice(len(test_images), arguments.images, replace=False)
    images, labels = test_images[chosen], test_labels[chosen]
    print(f"{arguments.images} test images made into photos of {len(BACKGROUNDS) * len(FILLS) * len(FORMATS)} kinds")
    with tempfile.TemporaryDirectory() as scratch:
        results = photo_results(score, images, labels, arguments.seed, Path(scratch))
    print_accuracy(results, (test_predicted[chosen] == labels).mean())
    test_share = (test_scores > score.unfamiliarity.threshold).mean()
    rate = json.loads((REPO_ROOT / "reports" / "unfamiliarity" / "summary.json").read_text())["flag_rate"]
    print_flagged(results, test_share, rate)
    print_foreign(score, test_scores, arguments.seed)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
