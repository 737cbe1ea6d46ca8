from dataclasses import replace

import numpy as np
import pytest

from pipeline.model.network import build_model, build_optimizer, compile_model
from pipeline.model.training import TrainParams
from pipeline.params import ParamsError, load_params
from tests.support.data import square_images
from tests.support.workspaces import REPO_ROOT

DEFAULTS = load_params(TrainParams, REPO_ROOT / "params.yaml")
# The tutorial's model: two plain conv blocks, Dense(128), Adam(1e-4), batch 32, 10 epochs.
TUTORIAL = replace(
    DEFAULTS,
    conv_filters=(32, 64),
    convs_per_block=1,
    kernel_size=3,
    activation="relu",
    pooling="max",
    batch_norm=False,
    conv_dropout=0.0,
    dense_units=128,
    dense_dropout=0.0,
    augment_flip=False,
    augment_max_shift=0.0,
    augment_erasing=0.0,
    label_smoothing=0.0,
    optimizer="adam",
    learning_rate=1e-4,
    lr_schedule="constant",
    batch_size=32,
    epochs=10,
)


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_tutorial_params_build_the_tutorial_model():
    model = build_model(TUTORIAL)
    assert layer_types(model) == [
        "InputLayer",
        "Rescaling",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert model.count_params() == 421_642  # 320 + 18,496 + 401,536 + 1,290
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize(
    "changes",
    [
        dict(conv_filters=(16,), convs_per_block=2, pooling="average"),
        dict(conv_filters=(8, 16, 32), kernel_size=5, batch_norm=True, conv_dropout=0.2),
        dict(conv_filters=(8, 8, 8, 8), activation="gelu", dense_dropout=0.5, augment_flip=True, augment_max_shift=0.2),
        dict(conv_filters=(8, 16), convs_per_block=2, augment_erasing=0.5),
        dict(batch_norm=False, conv_dropout=0.0, dense_dropout=0.0, augment_flip=False, augment_max_shift=0.0),
    ],
)
def test_model_follows_its_params(changes):
    params = replace(DEFAULTS, **changes)
    model = build_model(params)
    types = layer_types(model)
    assert types.count("Conv2D") == len(params.conv_filters) * params.convs_per_block
    assert types.count("BatchNormalization") == (len(params.conv_filters) if params.batch_norm else 0)
    assert types.count("SpatialDropout2D") == (len(params.conv_filters) if params.conv_dropout else 0)
    assert types.count("Dropout") == (1 if params.dense_dropout else 0)
    assert ("RandomFlip" in types) == params.augment_flip
    assert ("RandomTranslation" in types) == bool(params.augment_max_shift)
    assert ("RandomErasing" in types) == bool(params.augment_erasing)
    assert ("AveragePooling2D" in types) == (params.pooling == "average")
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [layer.filters for layer in convs][:: params.convs_per_block] == list(params.conv_filters)
    assert all(layer.kernel_size == (params.kernel_size,) * 2 for layer in convs)
    assert model.output_shape == (None, 10)


def test_model_takes_raw_uint8_images_and_scales_them_itself():
    model = build_model(TUTORIAL)
    assert model.inputs[0].dtype == "uint8"
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    probabilities = model.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    scaled = model.get_layer("scale_to_unit")(images.astype("float32"))
    assert float(np.max(scaled)) <= 1.0


def test_random_erasing_changes_training_images_only():
    from pipeline.keras_runtime import load_keras

    load_keras().utils.set_random_seed(0)  # the same draws on every run, so the shares below are not luck
    layer = build_model(replace(TUTORIAL, augment_erasing=0.9)).get_layer("augment_erasing")
    images = np.full((64, 28, 28, 1), 0.5, dtype="float32")
    erased = np.asarray(layer(images, training=True))
    changed = (erased != images).reshape(64, -1).any(axis=1)
    assert 0.7 < changed.mean() < 1.0  # about nine in ten images, each with one rectangle
    assert (erased != images).reshape(64, -1).mean(axis=1).max() < 0.6
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_flip_averaging_predicts_the_mean_of_image_and_mirror_image(tmp_path):
    from pipeline.keras_runtime import load_keras
    from pipeline.model.network import with_flip_averaging

    model = build_model(replace(TUTORIAL, conv_filters=(4,), dense_units=8))
    averaged = with_flip_averaging(model)
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    expected = (model.predict(images, verbose=0) + model.predict(images[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(averaged.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)
    averaged.save(tmp_path / "model.keras")  # loads back with stock Keras, no custom objects
    reloaded = load_keras().models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_optimizers_and_schedules():
    import keras

    assert isinstance(build_optimizer(TUTORIAL, 10), keras.optimizers.Adam)
    assert float(build_optimizer(TUTORIAL, 10).learning_rate) == pytest.approx(1e-4)
    cosine = build_optimizer(replace(TUTORIAL, lr_schedule="cosine", learning_rate=0.01, epochs=2), 5)
    schedule = cosine.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    assert schedule["config"]["decay_steps"] == 10  # epochs x steps per epoch
    adamw = build_optimizer(replace(TUTORIAL, optimizer="adamw", weight_decay=1e-4), 10)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(1e-4)
    assert isinstance(build_optimizer(replace(TUTORIAL, optimizer="sgd"), 10), keras.optimizers.SGD)


def test_a_tiny_training_run_lowers_the_loss():
    import keras

    images, labels = square_images(400, seed=0)
    keras.utils.set_random_seed(0)
    params = replace(TUTORIAL, conv_filters=(8, 16), dense_units=32, learning_rate=3e-3, epochs=4)
    model = compile_model(params, steps_per_epoch=13)
    history = model.fit(images, labels, batch_size=32, epochs=4, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.8


def test_label_smoothing_trains_on_one_hot_targets_and_caps_confidence():
    import keras

    from pipeline.model.training import make_dataset

    images, labels = square_images(400, seed=0)
    confidence = {}
    for smoothing in (0.0, 0.3):
        keras.utils.set_random_seed(0)
        params = replace(
            TUTORIAL, conv_filters=(8, 16), dense_units=32, learning_rate=3e-3, epochs=6, label_smoothing=smoothing
        )
        model = compile_model(params, steps_per_epoch=13)
        batches = make_dataset(images, labels, 32, seed=0, one_hot=smoothing > 0)
        history = model.fit(batches, epochs=6, shuffle=False, verbose=0).history
        assert history["accuracy"][-1] > 0.8  # "accuracy" reads one-hot targets as well as class indices
        confidence[smoothing] = float(model.predict(images, verbose=0).max(axis=1).mean())
    # With s = 0.3 the loss is lowest at 1 - 0.3 + 0.03 = 0.73 for the true class; without, at 1.
    assert confidence[0.3] < 0.8 < confidence[0.0]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("label_smoothing", 1.0, "train.label_smoothing must be >= 0 and < 1, got 1.0"),
        ("conv_dropout", 1.0, "train.conv_dropout must be >= 0 and < 1, got 1.0"),
        ("dense_dropout", -0.1, "train.dense_dropout must be >= 0 and < 1, got -0.1"),
        ("epochs", 0, "train.epochs must be >= 1, got 0"),
        ("batch_size", -32, "train.batch_size must be >= 1, got -32"),
        ("optimizer", "adamx", "train.optimizer must be one of adam, adamw, sgd, rmsprop, got 'adamx'"),
        ("activation", "relu6x", "train.activation must be one of relu, elu, gelu, selu, swish, tanh, leaky_relu"),
        ("conv_filters", [], "train.conv_filters must be a non-empty list of positive integers, got []"),
        ("conv_filters", [8, 8, 8, 8, 8], "train.conv_filters may have at most 4 blocks"),
        ("weight_decay", 0.01, "train.weight_decay must be 0 unless train.optimizer is adamw, got 0.01"),
        ("batch_norm", "yes", "train.batch_norm must be true or false, got 'yes'"),
        ("precision", "float16", "train.precision must be one of float32, mixed_bfloat16, mixed_float16, auto"),
    ],
)
def test_bad_train_params_name_the_key(write_params, key, value, message):
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_params(TrainParams, write_params({f"train.{key}": value}))


@pytest.mark.parametrize(
    ("device", "amx", "resolved"),
    [("GPU", True, "mixed_float16"), ("CPU", True, "mixed_bfloat16"), ("CPU", False, "float32")],
)
def test_auto_precision_is_the_fastest_for_the_machine(monkeypatch, device, amx, resolved):
    from pipeline.model import training

    monkeypatch.setattr(training, "training_device", lambda: device)
    monkeypatch.setattr(training, "cpu_has_amx_bf16", lambda: amx)
    assert training.resolve_precision("auto") == resolved
    assert training.resolve_precision("float32") == "float32"  # a named precision is taken as it is


def test_models_built_in_a_training_precision_keep_it_and_later_models_are_float32():
    from pipeline.model.training import training_precision

    with training_precision(replace(DEFAULTS, precision="mixed_bfloat16")) as policy:
        trained = build_model(DEFAULTS)
    later = build_model(DEFAULTS)
    assert policy == "mixed_bfloat16" and trained.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert later.get_layer("block1_conv1").compute_dtype == "float32"
    # The probabilities stay float32 in any precision.
    assert trained.get_layer("class_probabilities").compute_dtype == "float32"
