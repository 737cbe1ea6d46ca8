"""How often the drift verdict catches a shift, and how often it calls a clean batch drifted, beside BBSDs.

The protocol of Rabanser, Guennemann and Lipton, "Failing Loudly: An Empirical Study of Methods for Detecting
Dataset Shift" (NeurIPS 2019), on the real data: batches of 10 to 5,000 of the 10,000 test images, checked against
the reference features (data/drift_reference/original.features.npz, the validation split), with
- Gaussian noise of sd 1, 10 and 100 (0-255 scale), and small, medium and large image shifts (random rotation,
  translation and zoom; random horizontal flips for medium and large), each on 0.1, 0.5 or all of the batch;
- knockout: 0.1, 0.5 or all of class 0 removed from the test images before the batch is drawn;
- the project's own scenarios (pipeline/drift/shifts.py) at their default strengths;
- clean batches, for the false-alarm rate and its 95% upper bound (Clopper-Pearson).
Every batch gets the project's verdict (pipeline/drift/stat_tests.py, calibrated on the reference; min_batch is not
applied, so every size gets a verdict) and, as the bare reference, the paper's best detector, BBSDs: a KS test on
each softmax output, drift when any p <= alpha / classes.
The features of every image are computed once (a shifted copy of the whole test set per shift), so each verdict
is numpy and scipy on cached rows. Run `dvc repro` first (it needs models/model.keras, data/prepared/ and
data/drift_reference/original.features.npz).

    python bench/drift_power.py [--repetitions N] [--clean-batches N] [--scenario-repetitions N]
                                [--resamples N] [--seed N] [--csv PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage, stats
from workspace import REPO_ROOT

from pipeline.data.datasets import dataset_spec
from pipeline.data.preprocessing import load_arrays
from pipeline.drift.features import fit_components, image_features, load_features
from pipeline.drift.params import DriftParams
from pipeline.drift.shifts import SCENARIOS, apply_shift
from pipeline.drift.stat_tests import FeatureMatrix, calibrate, feature_matrix, judge_batch, ks_distances, ks_p_values
from pipeline.model.network import load_model
from pipeline.params import load_params

SIZES = (10, 20, 50, 100, 200, 500, 1000, 5000)
SHARES = (0.1, 0.5, 1.0)  # of the batch's images shifted; for knockout, of class 0 removed
NOISE_SD = {"small": 1.0, "medium": 10.0, "large": 100.0}  # on the 0-255 scale
# Rotation up to (degrees), translation up to (share of the side), zoom range, random horizontal flips.
IMAGE_SHIFTS = {"small": (10, 0.05, 0.1, False), "medium": (40, 0.2, 0.2, True), "large": (90, 0.4, 0.4, True)}
INTENSITIES = ("small", "medium", "large")
KNOCKOUT_CLASS = 0
SCENARIO_SIZE = 1000
# The paper's BBSDs detection accuracy by batch size, averaged over its MNIST and CIFAR-10 shifts.
PAPER_BBSDS = {10: 0.19, 100: 0.47, 1000: 0.70, 10000: 0.79}


@dataclass(frozen=True)
class Rows:
    """Cached features of a set of images: the columns the project's verdict tests, and the raw softmax outputs."""

    matrix: FeatureMatrix
    softmax: np.ndarray

    def take(self, indices: np.ndarray) -> Rows:
        matrix = FeatureMatrix(self.matrix.names, self.matrix.values[indices], self.matrix.predicted[indices])
        return Rows(matrix, self.softmax[indices])


def mixed(clean: Rows, shifted: Rows, indices: np.ndarray, share: float) -> Rows:
    """The images at `indices`, the first `share` of them shifted."""
    count = int(round(share * len(indices)))
    head, tail = shifted.take(indices[:count]), clean.take(indices[count:])
    values = np.concatenate([head.matrix.values, tail.matrix.values])
    predicted = np.concatenate([head.matrix.predicted, tail.matrix.predicted])
    return Rows(FeatureMatrix(clean.matrix.names, values, predicted), np.concatenate([head.softmax, tail.softmax]))


def noisy(images: np.ndarray, sd: float, rng) -> np.ndarray:
    return np.clip(np.rint(images + rng.normal(0, sd, images.shape)), 0, 255).astype(np.uint8)


def affine_shifted(images: np.ndarray, rotation: float, translation: float, zoom: float, flip: bool, rng):
    """Each image rotated, scaled (per axis) and moved at random about its centre, as Keras' ImageDataGenerator."""
    side = images.shape[1]
    centre = np.full(2, (side - 1) / 2)
    shifted = np.empty_like(images)
    for index, image in enumerate(images[..., 0].astype(np.float32)):
        if flip and rng.random() < 0.5:
            image = image[:, ::-1]
        angle = np.deg2rad(rng.uniform(-rotation, rotation))
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        inverse = np.linalg.inv(turn @ np.diag(rng.uniform(1 - zoom, 1 + zoom, 2)))
        moved = centre + rng.uniform(-translation, translation, 2) * side
        # affine_transform maps each output pixel to the input: input = inverse @ (output - moved) + centre.
        out = ndimage.affine_transform(image, inverse, offset=centre - inverse @ moved, order=1, cval=0.0)
        shifted[index, ..., 0] = np.clip(np.rint(out), 0, 255)
    return shifted


class Bench:
    """The model, the reference and the test set's features, and the timing of each part."""

    def __init__(self, arguments, seconds: dict[str, float]):
        params = load_params(DriftParams, REPO_ROOT / "params.yaml")
        self.alpha, self.effect_floor = params.alpha, params.effect_floor
        resamples = arguments.resamples or params.calibration_resamples
        self.seconds, self.batch_size = seconds, params.batch_size
        self.class_names = dataset_spec("fashion_mnist").class_names
        self.model = load_model(REPO_ROOT / "models" / "model.keras")
        reference = load_features(REPO_ROOT / "data" / "drift_reference" / "original.features.npz")
        self.components = fit_components(reference.embeddings, params.embedding_components, params.seed)
        self.reference = Rows(feature_matrix(reference, self.components, self.class_names), reference.probabilities)
        self.reference_softmax = np.sort(reference.probabilities.astype(np.float64), axis=0)
        self.images, self.labels = load_arrays(REPO_ROOT / "data" / "prepared" / "test.npz")
        self.clean = self.rows(self.images)
        start = time.perf_counter()
        self.calibrated = calibrate(self.reference.matrix, len(self.class_names), resamples, arguments.seed)
        seconds["calibration"] += time.perf_counter() - start
        self.resamples = resamples

    def rows(self, images: np.ndarray) -> Rows:
        start = time.perf_counter()
        features = image_features(self.model, images, self.batch_size)
        self.seconds["model features"] += time.perf_counter() - start
        return Rows(feature_matrix(features, self.components, self.class_names), features.probabilities)

    def judge(self, batch: Rows) -> dict:
        start = time.perf_counter()
        _, verdict = judge_batch(self.calibrated, batch.matrix, self.alpha, self.effect_floor, min_batch=1)
        middle = time.perf_counter()
        classes = batch.softmax.shape[1]
        # KS on each softmax output, as ks_2samp's asymptotic test (the same statistic, a faster search).
        distances = ks_distances(self.reference_softmax, batch.softmax.astype(np.float64))
        bbsds_p = float(ks_p_values(distances, len(self.reference_softmax), len(batch.softmax)).min())
        self.seconds["project verdicts"] += middle - start
        self.seconds["BBSDs verdicts"] += time.perf_counter() - middle
        return {
            "project": verdict.status == "drift",
            "bbsds": bbsds_p <= self.alpha / classes,
            "project_smallest_p": verdict.smallest_p,
            "project_threshold": verdict.threshold,
            "bbsds_smallest_p": bbsds_p,
            "rejected": ";".join(verdict.rejected),
        }


def shifted_copies(bench: Bench, seed: int) -> dict[tuple[str, str], Rows]:
    """The features of the whole test set under each noise and image shift, computed once."""
    shifts = {
        "noise": lambda intensity, rng: noisy(bench.images, NOISE_SD[intensity], rng),
        "image": lambda intensity, rng: affine_shifted(bench.images, *IMAGE_SHIFTS[intensity], rng),
    }
    copies = {}
    for number, (shift, make) in enumerate(shifts.items()):
        for intensity in INTENSITIES:
            start = time.perf_counter()
            images = make(intensity, np.random.default_rng([seed, number, INTENSITIES.index(intensity)]))
            bench.seconds["shifting images"] += time.perf_counter() - start
            copies[shift, intensity] = bench.rows(images)
    return copies


def clean_records(bench: Bench, batches: int, rng) -> list[dict]:
    records = []
    for size in SIZES:
        for repetition in range(batches):
            batch = bench.clean.take(rng.choice(len(bench.images), size, replace=False))
            records.append({"shift": "clean", "size": size, "repetition": repetition, **bench.judge(batch)})
    return records


def shift_records(bench: Bench, copies: dict, repetitions: int, rng) -> list[dict]:
    """Every noise, image and knockout cell: intensity x share x size, `repetitions` batches each."""
    records = []
    class_members = np.flatnonzero(bench.labels == KNOCKOUT_CLASS)
    for size in SIZES:
        for share in SHARES:
            for repetition in range(repetitions):
                cell = {"size": size, "share": share, "repetition": repetition}
                for (shift, intensity), shifted in copies.items():
                    batch = mixed(bench.clean, shifted, rng.choice(len(bench.images), size, replace=False), share)
                    records.append({"shift": shift, "intensity": intensity, **cell, **bench.judge(batch)})
                removed = rng.choice(class_members, int(np.ceil(share * len(class_members))), replace=False)
                pool = np.setdiff1d(np.arange(len(bench.images)), removed)
                batch = bench.clean.take(rng.choice(pool, size, replace=False))
                records.append({"shift": "knockout", "intensity": f"{share:g}", **cell, **bench.judge(batch)})
    return records


def scenario_records(bench: Bench, repetitions: int, seed: int, rng) -> list[dict]:
    """Each project scenario at its default strength, applied to the whole test set, then sampled."""
    records = []
    for scenario in SCENARIOS:
        start = time.perf_counter()
        images, _ = apply_shift(bench.images, bench.labels, scenario, None, seed)
        bench.seconds["shifting images"] += time.perf_counter() - start
        shifted = bench.rows(images)
        for size in SIZES:
            for repetition in range(repetitions):
                batch = shifted.take(rng.choice(len(images), size, replace=False))
                cell = {"shift": f"scenario {scenario}", "size": size, "repetition": repetition}
                records.append({**cell, **bench.judge(batch)})
    return records


def upper_bound(alarms: int, trials: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound of a rate seen `alarms` times in `trials`."""
    return 1.0 if alarms == trials else float(stats.beta.ppf(0.95, alarms + 1, trials - alarms))


def print_false_alarms(clean: pd.DataFrame, alpha: float) -> None:
    print(f"\n1. false alarms on clean test-set batches (target alpha = {alpha}; 95% upper bound, Clopper-Pearson)")
    print(f"   {'size':>5}  {'batches':>7}  {'project verdict':>18}  {'BBSDs':>18}")
    for size, group in clean.groupby("size"):
        cells = [
            f"{group[name].mean():6.1%} (<= {upper_bound(int(group[name].sum()), len(group)):5.1%})"
            for name in ("project", "bbsds")
        ]
        print(f"   {size:>5}  {len(group):>7}  {cells[0]:>18}  {cells[1]:>18}")


def print_by_size(shifted: pd.DataFrame) -> None:
    cells = shifted.groupby("size").size().iloc[0]
    print(f"\n2. detection accuracy by batch size, over all {cells} shifted batches of each size")
    print(f"   {'size':>5}  {'project':>8}  {'BBSDs':>6}  {'paper BBSDs':>11}")
    for size, group in shifted.groupby("size"):
        paper = f"{PAPER_BBSDS[size]:.2f}" if size in PAPER_BBSDS else ""
        print(f"   {size:>5}  {group.project.mean():8.2f}  {group.bbsds.mean():6.2f}  {paper:>11}")
    print(f"   {'all':>5}  {shifted.project.mean():8.2f}  {shifted.bbsds.mean():6.2f}")


def pair_table(frame: pd.DataFrame) -> None:
    """Detection rates per `row` column value and batch size: project / BBSDs."""
    print(f"   {'':<26}" + "".join(f"{size:>10}" for size in SIZES))
    for row, group in frame.groupby("row", sort=False):
        rates = group.groupby("size")[["project", "bbsds"]].mean()
        print(f"   {row:<26}" + "".join(f"{rates.project[s]:>5.2f}/{rates.bbsds[s]:<4.2f}" for s in SIZES))


def print_by_shift(shifted: pd.DataFrame) -> None:
    print("\n3. detection accuracy by shift and intensity, over shares and sizes")
    print("   (noise small/medium/large: sd 1/10/100; image: rotation up to 10/40/90 degrees, translation")
    print("   0.05/0.2/0.4, zoom 0.1/0.2/0.4; knockout: the share of class 0 removed)")
    print(f"   {'shift':<26}  {'project':>8}  {'BBSDs':>6}")
    frame = shifted.assign(row=shifted["shift"] + " " + shifted["intensity"])
    for row, group in frame.groupby("row", sort=False):
        print(f"   {row:<26}  {group.project.mean():8.2f}  {group.bbsds.mean():6.2f}")
    for share, group in shifted[shifted["shift"] != "knockout"].groupby("share"):
        print(f"   {f'share {share:g} (noise, image)':<26}  {group.project.mean():8.2f}  {group.bbsds.mean():6.2f}")
    print("\n   by batch size (project / BBSDs):")
    pair_table(frame)


def print_scenarios(scenarios: pd.DataFrame) -> None:
    at_size = scenarios[scenarios["size"] == SCENARIO_SIZE]
    runs = at_size.groupby("shift").size().iloc[0]
    print(f"\n4. the project's scenarios at their default strengths, {runs} batches of {SCENARIO_SIZE:,} each")
    print(f"   {'scenario':<26}  {'project':>8}  {'BBSDs':>6}")
    for shift, group in at_size.groupby("shift", sort=False):
        print(f"   {shift.removeprefix('scenario '):<26}  {group.project.mean():8.2f}  {group.bbsds.mean():6.2f}")
    print("\n   by batch size (project / BBSDs):")
    pair_table(scenarios.assign(row=scenarios["shift"].str.removeprefix("scenario ")))


def print_reference(seconds: dict[str, float], total: float) -> None:
    paper = ", ".join(f"{rate:.2f} at {size:,}" for size, rate in PAPER_BBSDS.items())
    print(f"\n5. the paper's BBSDs detection accuracy (mean over its MNIST and CIFAR-10 shifts): {paper}")
    print(f"   wall time {total:.0f} s: " + ", ".join(f"{part} {value:.0f} s" for part, value in seconds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5, help="batches per shifted cell (shift x share x size)")
    parser.add_argument("--clean-batches", type=int, default=1000, help="clean batches per size, for false alarms")
    parser.add_argument("--scenario-repetitions", type=int, default=20, help="batches per scenario and size")
    parser.add_argument("--resamples", type=int, help="calibration resamples (default: drift.calibration_resamples)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", help="write every batch's results to this CSV file")
    arguments = parser.parse_args()
    if not (REPO_ROOT / "data" / "drift_reference" / "original.features.npz").exists():
        sys.exit("drift_power: error: data/drift_reference/original.features.npz not found; run `dvc repro` first")
    start, seconds = time.perf_counter(), defaultdict(float)
    bench = Bench(arguments, seconds)
    rng = np.random.default_rng(arguments.seed)
    print(
        f"{len(bench.images):,} test images against {len(bench.reference.softmax):,} reference images;"
        f" alpha {bench.alpha}, effect floor {bench.effect_floor}, {bench.resamples} calibration resamples"
    )
    clean = pd.DataFrame(clean_records(bench, arguments.clean_batches, rng))
    shifted = pd.DataFrame(shift_records(bench, shifted_copies(bench, arguments.seed), arguments.repetitions, rng))
    scenarios = pd.DataFrame(scenario_records(bench, arguments.scenario_repetitions, arguments.seed, rng))
    print_false_alarms(clean, bench.alpha)
    print_by_size(shifted)
    print_by_shift(shifted)
    print_scenarios(scenarios)
    print_reference(dict(seconds), time.perf_counter() - start)
    if arguments.csv:
        pd.concat([clean, shifted, scenarios]).to_csv(arguments.csv, index=False)
        print(f"   per-batch results: {arguments.csv}")


if __name__ == "__main__":
    main()
