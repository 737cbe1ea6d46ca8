"""Which unfamiliarity score tells pictures that are not clothing from Fashion-MNIST, compared on the trained model.

Methods (higher = more unfamiliar), all from one prediction pass per image set:
- MSP: the maximum softmax probability, negated (Hendrycks and Gimpel 2017), of the model's flip-averaged output;
- energy: -logsumexp of the logits (Liu et al. 2020), the final Dense layer applied to the embedding;
- Mahalanobis: to the nearest class mean under a shared covariance (Lee et al. 2018);
- relative Mahalanobis: minus the distance under one Gaussian of all training embeddings (Ren et al. 2021);
- kNN: distance to the k-th nearest L2-normalised training embedding (Sun et al. 2022), over 10,000 of them;
- sums of scores standardised on the validation images, and pipeline/model/unfamiliarity.py's score (Mahalanobis +
  energy, each standardised on the training images).
Each threshold flags 5% of the validation split. Columns: share of the test split flagged (should be ~5%), AUROC
with the test images as negatives against each foreign set of bench/foreign_pictures.py, and the share flagged of
1,000 test images made into product photos (inverted to dark on white, saved as 64x64 RGB PNG files, read back
through pipeline.pictures.batches.load_batch), also with load_batch's crop turned off. Last, for the recommended
score, how many of those photos it flags among the ones the conversion gave back close to the test image they were
made from, and among the rest: what a share above 5% is owed to. Needs models/model.keras and data/prepared/
(`dvc repro`).

    python bench/unfamiliarity_methods.py [--seed N]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from foreign_pictures import font_letters, handwritten_digits, natural_photos, random_noise
from PIL import Image
from sklearn.metrics import roc_auc_score
from workspace import REPO_ROOT

from pipeline.data.preprocessing import load_arrays
from pipeline.model import unfamiliarity
from pipeline.model.network import load_model, output_weights, with_embedding_output
from pipeline.pictures.batches import load_batch

FLAG_RATE = 0.05
PRODUCT_PHOTOS = 1000
FOREIGN = ("digits", "letters", "noise", "photos")
PRODUCTS = ("products", "uncropped")  # the product photos converted with and without load_batch's crop
FAITHFUL = 20  # mean absolute difference (0-255) below which a converted photo counts as its test image kept
RECOMMENDED = "Mahalanobis + energy (pipeline)"
BANK_SIZE = 10_000  # training embeddings searched by kNN: a fifth of the training split
CHUNK = 1024  # queries per similarity block


def product_photos(images: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The images as a shop would show them, dark on white at 64x64 RGB, back through the project's conversion with
    and without its crop: each as (converted images, index of each in `images`; pictures it refuses are left out)."""
    converted = {}
    with tempfile.TemporaryDirectory(prefix="products-") as scratch:
        for index, image in enumerate(images):
            picture = Image.fromarray(255 - image[..., 0]).resize((64, 64), Image.Resampling.BILINEAR)
            picture.convert("RGB").save(Path(scratch) / f"{index:04d}.png")
        for name, crop in zip(PRODUCTS, (True, False), strict=True):
            batch = load_batch(scratch, on_skip=lambda reason: None, crop=crop)
            converted[name] = batch.images, np.array([int(Path(name).stem) for name in batch.names])
    return converted


def normalised(embeddings: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(lengths, 1e-12)).astype(np.float32)


def knn_distance(bank: np.ndarray, embeddings: np.ndarray, neighbours: int) -> np.ndarray:
    """Distance between L2-normalised embeddings to the k-th nearest in the bank (Sun et al. 2022)."""
    queries = normalised(embeddings)
    kth = np.empty(len(queries))
    for start in range(0, len(queries), CHUNK):
        similarity = queries[start : start + CHUNK] @ bank.T
        kth[start : start + CHUNK] = np.partition(similarity, -neighbours, axis=1)[:, -neighbours]
    return np.sqrt(np.maximum(2 - 2 * kth, 0))  # unit vectors: |a - b|^2 = 2 - 2 cos(a, b)


def method_scores(train, outputs: dict, weights, bias, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Each method's scores of each image set, from (probabilities, embeddings) of the training and other sets."""
    (_, train_embeddings), train_labels = train
    scorer = unfamiliarity.fit(train_embeddings, train_labels, weights, bias)
    everything = np.asarray(train_embeddings, dtype=np.float64)
    background = everything.mean(axis=0, keepdims=True)
    spread = np.linalg.pinv(np.cov(everything, rowvar=False, bias=True), hermitian=True)
    one_gaussian = dataclasses.replace(scorer, class_means=background, precision=spread)
    bank = normalised(everything[np.random.default_rng(seed).permutation(len(everything))[:BANK_SIZE]])
    methods = {
        "MSP": lambda p, e: -p.max(axis=1),
        "energy": lambda p, e: unfamiliarity.energy(scorer, e),
        "Mahalanobis": lambda p, e: unfamiliarity.mahalanobis(scorer, e),
        # min over classes of (d_k - d_0) is min_k d_k - d_0: d_0 does not depend on the class.
        "relative Mahalanobis": lambda p, e: (
            unfamiliarity.mahalanobis(scorer, e) - unfamiliarity.mahalanobis(one_gaussian, e)
        ),
        "kNN k=10": lambda p, e: knn_distance(bank, e, 10),
        "kNN k=50": lambda p, e: knn_distance(bank, e, 50),
        RECOMMENDED: lambda p, e: unfamiliarity.scores(scorer, e),
    }
    table = {}
    for name, method in methods.items():
        start = time.perf_counter()
        table[name] = {subset: method(*pair) for subset, pair in outputs.items()}
        print(f"  {name}: {time.perf_counter() - start:.1f} s")
    combine = {
        "Mahalanobis + kNN k=10": ("Mahalanobis", "kNN k=10"),
        "Mahalanobis + kNN k=10 + energy": ("Mahalanobis", "kNN k=10", "energy"),
    }
    for name, parts in combine.items():
        standardised = [standardise(table[part]) for part in parts]
        table[name] = {subset: sum(part[subset] for part in standardised) for subset in outputs}
    return table


def standardise(by_subset: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores in units of the validation images' spread, so that a sum weighs its parts equally."""
    centre, spread = by_subset["val"].mean(), by_subset["val"].std()
    return {subset: (values - centre) / spread for subset, values in by_subset.items()}


def row(by_subset: dict[str, np.ndarray]) -> list[float]:
    threshold = unfamiliarity.threshold_at(by_subset["val"], FLAG_RATE)
    normal = by_subset["test"]
    aurocs = []
    for foreign in FOREIGN:
        truth = np.r_[np.zeros(len(normal)), np.ones(len(by_subset[foreign]))]
        aurocs.append(roc_auc_score(truth, np.r_[normal, by_subset[foreign]]))
    flagged = [100 * np.mean(by_subset[subset] > threshold) for subset in ("test", *PRODUCTS)]
    return [flagged[0], *aurocs, *flagged[1:]]


def build_images(prepared: dict, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Every image set by name, and the product photos with the index of each one's test image."""
    builders = {
        "digits": handwritten_digits,
        "letters": lambda: font_letters(seed),
        "noise": lambda: random_noise(seed),
        "photos": lambda: natural_photos(seed),
        "products": lambda: product_photos(prepared["test"][0][:PRODUCT_PHOTOS]),
    }
    images, products = {split: pair[0] for split, pair in prepared.items()}, {}
    for name, build in builders.items():
        start = time.perf_counter()
        built = build()
        if name == "products":
            products = built
            images.update({subset: converted for subset, (converted, _) in built.items()})
        else:
            images[name] = built
        print(f"built {name}: {len(images[name]):,} images in {time.perf_counter() - start:.1f} s")
    return images, products


def predicted(model, images: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(probabilities, embeddings) of each image set, from one pass of the model with its embedding output."""
    both = with_embedding_output(model)
    outputs = {}
    for name, batch in images.items():
        start = time.perf_counter()
        probabilities, embeddings = both.predict(batch, batch_size=512, verbose=0)
        outputs[name] = (probabilities, embeddings.astype(np.float64))
        print(f"predicted {name}: {len(batch):,} images in {time.perf_counter() - start:.1f} s")
    return outputs


def print_table(table: dict[str, dict[str, np.ndarray]]) -> None:
    heading = ["test flagged", *(f"AUROC {name}" for name in FOREIGN), *(f"{name} flagged" for name in PRODUCTS)]
    widths = [max(len(title), 8) for title in heading]
    print(f"\n{'method':34}", *(f"{title:>{width}}" for title, width in zip(heading, widths, strict=True)))
    for name, by_subset in table.items():
        cells = [
            f"{value:.1f}%" if title.endswith("flagged") else f"{value:.3f}"
            for value, title in zip(row(by_subset), heading, strict=True)
        ]
        print(f"{name:34}", *(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True)))
    test, *aurocs, products, _ = row(table[RECOMMENDED])
    met = abs(test - 100 * FLAG_RATE) <= 1 and min(aurocs) >= 0.95 and products <= 10
    print(f"\n{RECOMMENDED} meets the targets: {'yes' if met else 'NO'}")


def print_products(by_subset: dict[str, np.ndarray], products: dict, test_images: np.ndarray) -> None:
    """How many product photos the score flags among those the conversion kept close to their test image."""
    threshold = unfamiliarity.threshold_at(by_subset["val"], FLAG_RATE)
    converted, kept = products["products"]
    difference = np.abs(converted.astype(float) - test_images[kept]).mean(axis=(1, 2, 3))
    faithful, flagged = difference < FAITHFUL, by_subset["products"] > threshold
    print(
        f"products flagged by it: {100 * flagged[faithful].mean():.1f}% of the {faithful.sum()} the conversion kept "
        f"within {FAITHFUL}/255 (mean) of their test image, {100 * flagged[~faithful].mean():.1f}% of the "
        f"{(~faithful).sum()} it changed more ({100 * np.mean(by_subset['test'][kept] > threshold):.1f}% of "
        "their test images as given)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    seed = parser.parse_args().seed
    begun = time.perf_counter()
    splits = ("train", "val", "test")
    prepared = {split: load_arrays(REPO_ROOT / "data" / "prepared" / f"{split}.npz") for split in splits}
    images, products = build_images(prepared, seed)
    model = load_model(REPO_ROOT / "models" / "model.keras")
    outputs = predicted(model, images)
    print("scoring:")
    table = method_scores((outputs.pop("train"), prepared["train"][1]), outputs, *output_weights(model), seed)
    print_table(table)
    print_products(table[RECOMMENDED], products, images["test"])
    print(f"wall time: {time.perf_counter() - begun:.0f} s")


if __name__ == "__main__":
    main()
