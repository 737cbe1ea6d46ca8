"""The CNN and its optimiser, built from the train section of params.yaml (its schema: training.TrainParams),
and loading it back.

The model takes raw 0-255 uint8 images of shape 28x28x1 and scales them itself, so whoever serves
it passes the same images the pipeline ingested. Augmentation layers are part of the model too:
Keras runs them only in training, so they cost nothing at prediction time.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.datasets import IMAGE_SHAPE, NUM_CLASSES
from pipeline.errors import PipelineError
from pipeline.keras_runtime import load_keras

if TYPE_CHECKING:  # annotations only: loading a model needs none of the training code
    from pipeline.model.training import TrainParams

INPUT_SHAPE = (*IMAGE_SHAPE, 1)
# The penultimate layer, whose activations the drift features use as the image's embedding.
EMBEDDING_LAYER = "dense"
# The classifier's last layer: the embedding's logits, through a softmax.
OUTPUT_LAYER = "class_probabilities"
# The output layer of a flip-averaged model: how a loaded model is recognised as one.
FLIP_AVERAGED = "flip_averaged_probabilities"


def build_model(params: TrainParams):
    keras = load_keras()
    layers = keras.layers

    inputs = keras.Input(shape=INPUT_SHAPE, dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255, name="scale_to_unit")(inputs)
    if params.augment_flip:
        x = layers.RandomFlip("horizontal", name="augment_flip")(x)
    if params.augment_max_shift:
        shift = params.augment_max_shift
        x = layers.RandomTranslation(shift, shift, fill_mode="constant", name="augment_shift")(x)
    if params.augment_erasing:
        # Random erasing (Zhong et al., 2017): a rectangle of up to a third of the image replaced by noise, in
        # this share of the training images. A (p, p) factor is a fixed probability; a lone p would draw one
        # from [0, p] for each image.
        probability = params.augment_erasing
        x = layers.RandomErasing((probability, probability), value_range=(0, 1), name="augment_erasing")(x)
    pooling = {"max": layers.MaxPooling2D, "average": layers.AveragePooling2D}[params.pooling]
    for block, filters in enumerate(params.conv_filters, start=1):
        for conv in range(1, params.convs_per_block + 1):
            x = layers.Conv2D(
                filters,
                params.kernel_size,
                padding="same",
                activation=params.activation,
                name=f"block{block}_conv{conv}",
            )(x)
        x = pooling(2, name=f"block{block}_pool")(x)
        if params.batch_norm:
            x = layers.BatchNormalization(name=f"block{block}_norm")(x)
        if params.conv_dropout:
            x = layers.SpatialDropout2D(params.conv_dropout, name=f"block{block}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(params.dense_units, activation=params.activation, name=EMBEDDING_LAYER)(x)
    if params.dense_dropout:
        x = layers.Dropout(params.dense_dropout, name="dense_dropout")(x)
    # The probabilities in float32 whatever the model computes in: a softmax in 16-bit floats loses the small ones.
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name="fashion_cnn")


def in_float32(model, params: TrainParams):
    """A model trained in a mixed precision, rebuilt in float32 with its weights (kept in float32 during mixed
    precision training, so nothing is lost): the saved model then predicts alike on every machine, including
    those without fast 16-bit arithmetic. A float32 model is returned as it is."""
    if model.dtype_policy.name == "float32":
        return model
    keras = load_keras()
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = build_model(params)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def with_flip_averaging(model):
    """The same model, predicting the mean of its outputs for an image and for its mirror image.

    Test-time augmentation matching the training-time flips; it stays one self-contained model
    (built from stock Keras ops, so loading it needs no custom code) at twice the prediction cost.
    A model with more than one output has its first (the probabilities) averaged and keeps the
    others (the embedding) for the image as given.
    """
    keras = load_keras()
    inputs = keras.Input(shape=INPUT_SHAPE, dtype="uint8", name="image")
    mirrored = keras.ops.flip(inputs, axis=2)  # axis 2 is the width of an NHWC batch
    direct, of_mirror = model(inputs), model(mirrored)
    if isinstance(direct, list | tuple):
        averaged = keras.layers.Average(name=FLIP_AVERAGED)([direct[0], of_mirror[0]])
        return keras.Model(inputs, [averaged, *direct[1:]], name=f"{model.name}_flip_averaged")
    outputs = keras.layers.Average(name=FLIP_AVERAGED)([direct, of_mirror])
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_averaged")


def classifier_of(model):
    """The classifier itself: a flip-averaged model wraps it as its one nested model."""
    keras = load_keras()
    if FLIP_AVERAGED not in [layer.name for layer in model.layers]:
        return model
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def output_weights(model) -> tuple[np.ndarray, np.ndarray]:
    """The output layer's kernel (embedding units x classes) and bias: the embedding's logits are x @ W + b."""
    try:
        kernel, bias = classifier_of(model).get_layer(OUTPUT_LAYER).get_weights()
    except ValueError as error:
        raise PipelineError(f"the model has no '{OUTPUT_LAYER}' output layer ({error})") from None
    return np.asarray(kernel), np.asarray(bias)


def with_embedding_output(model):
    """A trained model with a second output: the embedding layer's activations for the image as given.

    One prediction pass yields both the model's own probabilities (flip-averaged when the model is) and the
    embedding, instead of a pass for each. A model without the embedding layer is a PipelineError.
    """
    keras = load_keras()
    flip_averaged = FLIP_AVERAGED in [layer.name for layer in model.layers]
    classifier = classifier_of(model)
    try:
        both = keras.Model(classifier.inputs, [classifier.output, classifier.get_layer(EMBEDDING_LAYER).output])
    except ValueError as error:  # no layer of that name, or one the inputs do not reach
        raise PipelineError(f"the model has no usable '{EMBEDDING_LAYER}' embedding layer ({error})") from None
    return with_flip_averaging(both) if flip_averaged else both


def load_model(path: Path):
    """The saved Keras model; a missing or unreadable file is a one-line error naming it."""
    if not Path(path).is_file():
        raise PipelineError(f"{path}: model file not found (run the train stage first)")
    if Path(path).suffix == ".keras" and not zipfile.is_zipfile(path):
        # Keras would call it "File not found": it is there, but corrupt, truncated or something else.
        raise PipelineError(f"{path}: not a Keras model file (not a .keras zip archive)")
    keras = load_keras()
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{path}: not a readable Keras model ({' '.join(str(error).split())[:200]})") from None


def build_optimizer(params: TrainParams, steps_per_epoch: int):
    keras = load_keras()

    learning_rate = params.learning_rate
    if params.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=steps_per_epoch * params.epochs
        )
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=params.weight_decay)
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if params.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    return keras.optimizers.Adam(learning_rate)


def one_hot_targets(params: TrainParams) -> bool:
    """Whether the model trains on one-hot labels rather than class indices: label smoothing needs them (Keras'
    sparse cross-entropy has no smoothing), and without it class indices keep the loss as it always was."""
    return params.label_smoothing > 0


def compile_model(params: TrainParams, steps_per_epoch: int):
    keras = load_keras()
    model = build_model(params)
    loss = "sparse_categorical_crossentropy"
    if one_hot_targets(params):
        # Each target becomes (1 - s) * one_hot + s / 10: the model is never pushed to full certainty, which suits
        # classes a person confuses too (Shirt, T-shirt/top, Pullover, Coat).
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing)
    model.compile(
        optimizer=build_optimizer(params, steps_per_epoch),
        loss=loss,
        metrics=["accuracy"],
    )
    return model
