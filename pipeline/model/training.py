"""The train section of params.yaml (TrainParams) and fitting the CNN: seeded batches, deterministic ops, and a
checkpoint an interrupted run resumes from.

Used by the train stage and by every trial of the tune stage. Each finished epoch is backed up in a
checkpoint folder, and a rerun with the same params and data continues from the last finished epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.data.datasets import NUM_CLASSES
from pipeline.keras_runtime import load_keras
from pipeline.model.network import compile_model, one_hot_targets
from pipeline.params import SectionReader, param
from pipeline.plots import headless_pyplot

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
VALIDATION_BATCH = 1024  # prediction batch only: speed, not results
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "swish", "tanh", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
# Keras dtype policies a model may train in, and auto: the fastest of them on the machine (resolve_precision).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


@dataclass(frozen=True)
class TrainParams:
    SECTION: ClassVar[str] = "train"
    seed: int = param("number", integer=True, minimum=0)
    conv_filters: tuple[int, ...] = param("positive_ints")
    convs_per_block: int = param("number", integer=True, minimum=1)
    kernel_size: int = param("number", integer=True, minimum=1)
    activation: str = param("choice", options=ACTIVATIONS)
    pooling: str = param("choice", options=("max", "average"))
    batch_norm: bool = param("flag")
    conv_dropout: float = param("number", minimum=0, below=1)
    dense_units: int = param("number", integer=True, minimum=1)
    dense_dropout: float = param("number", minimum=0, below=1)
    augment_flip: bool = param("flag")
    augment_max_shift: float = param("number", minimum=0, below=1)
    augment_erasing: float = param("number", minimum=0, below=1)
    label_smoothing: float = param("number", minimum=0, below=1)
    flip_averaging: bool = param("flag")
    optimizer: str = param("choice", options=OPTIMIZERS)
    learning_rate: float = param("number", above=0)
    lr_schedule: str = param("choice", options=("constant", "cosine"))
    weight_decay: float = param("number", minimum=0)
    batch_size: int = param("number", integer=True, minimum=1)
    epochs: int = param("number", integer=True, minimum=1)
    early_stopping_patience: int = param("number", integer=True, minimum=0)
    precision: str = param("choice", options=PRECISIONS)

    def check(self, reader: SectionReader) -> None:
        if self.weight_decay and self.optimizer != "adamw":
            raise reader.fail("weight_decay", "must be 0 unless train.optimizer is adamw", self.weight_decay)
        # Each pooling halves the image: 28 survives four halvings (28, 14, 7, 3, 1).
        if len(self.conv_filters) > 4:
            raise reader.fail("conv_filters", "may have at most 4 blocks for 28x28 images", list(self.conv_filters))


def make_dataset(
    images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int | None = None, one_hot: bool = False
):
    """Batches of (uint8 images, labels); shuffled anew each epoch, in the same order for the same seed.

    Labels are class indices, or one-hot rows when `one_hot` (what a model with label smoothing trains on).
    """
    load_keras()
    import tensorflow as tf

    if one_hot:
        labels = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if seed is not None:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def training_datasets(params: TrainParams, train_split, val_split):
    """The (training, validation) batches a model built from `params` fits on: the train stage's and every trial's."""
    one_hot = one_hot_targets(params)
    return (
        make_dataset(*train_split, params.batch_size, seed=params.seed, one_hot=one_hot),
        make_dataset(*val_split, VALIDATION_BATCH, one_hot=one_hot),
    )


def seed_everything(seed: int) -> None:
    """Same params, code and data, same weights: seeded RNGs and deterministic TensorFlow ops."""
    keras = load_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def training_device() -> str:
    """Where Keras trains: on the GPU when TensorFlow sees one, else on the CPU."""
    load_keras()
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def cpu_has_amx_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 matrices in hardware (Intel AMX, from Sapphire Rapids on; Linux names
    the flag amx_bf16), which oneDNN uses for convolutions and dense layers."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no way to tell, so the safe choice
        return False


def resolve_precision(requested: str) -> str:
    """The Keras dtype policy to train in. auto is mixed_float16 on a GPU, whose tensor cores run float16 several
    times faster; mixed_bfloat16 on a CPU with AMX, where an epoch takes 0.4 to 0.6 of float32's time
    (bench/train_speed.py --breakdown); float32 on other CPUs, where bfloat16 was found no faster (on one with
    AVX-512 BF16 but no AMX)."""
    if requested != "auto":
        return requested
    if training_device() == "GPU":
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_amx_bf16() else "float32"


@contextlib.contextmanager
def training_precision(params: TrainParams) -> Iterator[str]:
    """Models built inside compute in the params' precision (yields the policy it resolved to); Keras' global policy
    is put back after, so that models built later in the same process, to predict, compute in float32."""
    keras = load_keras()
    before = keras.mixed_precision.global_policy()
    policy = resolve_precision(params.precision)
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(before)


def run_fingerprint(settings, data_files: list[Path]) -> str:
    """Identifies a run (training, or a search) by its settings (params, or any JSON-able value) and data: an
    interrupted run's state is resumed only by a run with the same fingerprint."""
    settings = asdict(settings) if is_dataclass(settings) else settings
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in data_files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def prepare_checkpoint_dir(checkpoint_dir: Path, fingerprint: str) -> bool:
    """Keep the checkpoint of an interrupted identical run, drop any other; True when resuming."""
    marker = checkpoint_dir / "fingerprint"
    resuming = marker.is_file() and marker.read_text() == fingerprint
    if not resuming:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        checkpoint_dir.mkdir(parents=True)
        marker.write_text(fingerprint)
    return resuming


def completed_epochs(checkpoint_dir: Path) -> int:
    """Epochs an interrupted run already finished (0 for a fresh start)."""
    history_file = checkpoint_dir / "history.csv"
    return pd.read_csv(history_file)["epoch"].nunique() if history_file.is_file() else 0


def fit(params: TrainParams, train_split, val_split, checkpoint_dir: Path):
    """Train the model; returns it with the full per-epoch history (resumed epochs included)."""
    keras = load_keras()

    seed_everything(params.seed)
    steps_per_epoch = int(np.ceil(len(train_split[1]) / params.batch_size))
    with training_precision(params):
        model = compile_model(params, steps_per_epoch)
    history_file = checkpoint_dir / "history.csv"
    callbacks = [
        keras.callbacks.CSVLogger(str(history_file), append=True),
        keras.callbacks.BackupAndRestore(str(checkpoint_dir / "backup")),
    ]
    if params.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=params.early_stopping_patience, restore_best_weights=True
            )
        )
    training_batches, validation_batches = training_datasets(params, train_split, val_split)
    model.fit(
        training_batches,
        validation_data=validation_batches,
        epochs=params.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=2,  # one line per epoch
    )
    history = pd.read_csv(history_file)
    # An interruption between the log line and the backup repeats an epoch; the last one counts.
    history = history.drop_duplicates("epoch", keep="last").sort_values("epoch")
    history["epoch"] += 1
    return model, history[HISTORY_COLUMNS].reset_index(drop=True)


def save_learning_curve(history: pd.DataFrame, path: Path) -> None:
    """The tutorial's learning curve (train vs validation loss), with accuracy beside it."""
    plt = headless_pyplot()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.plot(history["epoch"], history[metric], marker="o", markersize=3, label=f"train {metric}")
        axis.plot(history["epoch"], history[f"val_{metric}"], marker="o", markersize=3, label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    loss_axis.set_title("Learning curve: loss")
    accuracy_axis.set_title("Learning curve: accuracy")
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
