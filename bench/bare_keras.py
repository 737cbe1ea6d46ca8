"""The reference: the default model trained the way the tutorial writes it by hand, in plain Keras.

Same data (the prepared train/val split), same layers, same optimiser and schedule, same batch
size as params.yaml's train section (written for its default shape: one conv, pooling, batch
normalisation and spatial dropout per block); data scaled by hand into float arrays and passed
straight to fit(). Prints the images per second of fit() as json.

    python bench/bare_keras.py EPOCHS
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
layers = [keras.Input(shape=(28, 28, 1)), keras.layers.RandomFlip("horizontal")]
if PARAMS["augment_max_shift"]:
    shift = PARAMS["augment_max_shift"]
    layers.append(keras.layers.RandomTranslation(shift, shift, fill_mode="constant"))
for filters in PARAMS["conv_filters"]:
    layers += [
        keras.layers.Conv2D(filters, PARAMS["kernel_size"], padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.BatchNormalization(),
        keras.layers.SpatialDropout2D(PARAMS["conv_dropout"]),
    ]
layers += [
    keras.layers.Flatten(),
    keras.layers.Dense(PARAMS["dense_units"], activation="relu"),
    keras.layers.Dropout(PARAMS["dense_dropout"]),
    keras.layers.Dense(10, activation="softmax"),
]
model = keras.Sequential(layers)
steps = int(np.ceil(len(y_train) / PARAMS["batch_size"])) * EPOCHS
schedule = keras.optimizers.schedules.CosineDecay(PARAMS["learning_rate"], decay_steps=steps)
model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
model.fit(x_train, y_train, batch_size=PARAMS["batch_size"], epochs=EPOCHS, validation_data=(x_val, y_val), verbose=0)
seconds = time.perf_counter() - start
print(json.dumps({"images_per_second": len(y_train) * EPOCHS / seconds, "seconds": seconds}))
