"""The reference: the default model trained the way the tutorial writes it by hand, in plain Keras.

Same data (the prepared train/val split), same layers, augmentation, loss, optimiser and schedule, same batch
size as params.yaml's train section (written for its default shape: convolutions, pooling, batch normalisation
and spatial dropout per block); data scaled by hand into float arrays and passed straight to fit(), in the Keras
dtype policy given (float32 unless told). Prints as json the images per second of fit(), the seconds of its last
epoch (the first also traces the step) and the test accuracy.

    python bench/bare_keras.py EPOCHS [PREDICTIONS.npy [POLICY]]
"""

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import yaml

EPOCHS = int(sys.argv[1])
PARAMS = yaml.safe_load(Path("params.yaml").read_text())["train"]

with np.load("data/prepared/train.npz") as data:
    x_train, y_train = data["images"].reshape(-1, 28, 28, 1) / 255.0, data["labels"]
with np.load("data/prepared/val.npz") as data:
    x_val, y_val = data["images"].reshape(-1, 28, 28, 1) / 255.0, data["labels"]

keras.utils.set_random_seed(PARAMS["seed"])
keras.mixed_precision.set_global_policy(sys.argv[3] if len(sys.argv) > 3 else "float32")
layers = [keras.Input(shape=(28, 28, 1)), keras.layers.RandomFlip("horizontal")]
if PARAMS["augment_max_shift"]:
    shift = PARAMS["augment_max_shift"]
    layers.append(keras.layers.RandomTranslation(shift, shift, fill_mode="constant"))
if PARAMS["augment_erasing"]:
    chance = PARAMS["augment_erasing"]
    layers.append(keras.layers.RandomErasing((chance, chance), value_range=(0, 1)))
for filters in PARAMS["conv_filters"]:
    convolutions = [
        keras.layers.Conv2D(filters, PARAMS["kernel_size"], padding="same", activation="relu")
        for _ in range(PARAMS["convs_per_block"])
    ]
    layers += [
        *convolutions,
        keras.layers.MaxPooling2D(2),
        keras.layers.BatchNormalization(),
        keras.layers.SpatialDropout2D(PARAMS["conv_dropout"]),
    ]
layers += [
    keras.layers.Flatten(),
    keras.layers.Dense(PARAMS["dense_units"], activation="relu"),
    keras.layers.Dropout(PARAMS["dense_dropout"]),
    keras.layers.Dense(10, activation="softmax", dtype="float32"),
]
model = keras.Sequential(layers)
steps = int(np.ceil(len(y_train) / PARAMS["batch_size"])) * EPOCHS
schedule = keras.optimizers.schedules.CosineDecay(PARAMS["learning_rate"], decay_steps=steps)
loss = "sparse_categorical_crossentropy"
if PARAMS["label_smoothing"]:
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=PARAMS["label_smoothing"])
    y_train, y_val = np.eye(10)[y_train], np.eye(10)[y_val]
model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.last = time.perf_counter() - self.started


times = EpochTimes()
start = time.perf_counter()
model.fit(
    x_train,
    y_train,
    batch_size=PARAMS["batch_size"],
    epochs=EPOCHS,
    validation_data=(x_val, y_val),
    callbacks=[times],
    verbose=0,
)
seconds = time.perf_counter() - start
with np.load("data/prepared/test.npz") as data:
    x_test, y_test = data["images"].reshape(-1, 28, 28, 1) / 255.0, data["labels"]
predicted = model.predict(x_test, batch_size=1024, verbose=0).argmax(axis=1)
if len(sys.argv) > 2:
    np.save(sys.argv[2], predicted)
report = {"images_per_second": len(y_train) * EPOCHS / seconds, "seconds": seconds, "epoch_seconds": times.last}
print(json.dumps({**report, "test_accuracy": float((predicted == y_test).mean())}))
