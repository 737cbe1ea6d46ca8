"""The model's views of an image that the unfamiliarity score reads (pipeline/model/unfamiliarity.py), from the one
prediction pass: apart from pipeline/model/network.py, so that the train stage does not depend on them."""

from __future__ import annotations

from pipeline.errors import PipelineError
from pipeline.keras_runtime import load_keras
from pipeline.model.network import EMBEDDING_LAYER, FLIP_AVERAGED, classifier_of, with_flip_averaging


def block_outputs(classifier) -> list[str]:
    """The last layer of each convolution block at prediction time (its batch normalisation, else its pooling)."""
    names = [layer.name for layer in classifier.layers]
    blocks = sorted({name.split("_")[0] for name in names if name.startswith("block") and name.endswith("_pool")})
    return [f"{block}_norm" if f"{block}_norm" in names else f"{block}_pool" for block in blocks]


def with_unfamiliarity_views(model):
    """A trained model whose outputs are its probabilities, its embedding, then each convolution block's feature
    maps averaged and maxed over the image (channels wide): the views of an image the unfamiliarity score measures
    (pipeline/model/unfamiliarity.py), from the one prediction pass. Pooling inside the model keeps what leaves it
    small; the blocks' maps themselves are computed for the prediction anyway."""
    keras = load_keras()
    flip_averaged = FLIP_AVERAGED in [layer.name for layer in model.layers]
    classifier = classifier_of(model)
    blocks = [classifier.get_layer(name).output for name in block_outputs(classifier)]
    try:
        embedding = classifier.get_layer(EMBEDDING_LAYER).output
    except ValueError as error:
        raise PipelineError(f"the model has no usable '{EMBEDDING_LAYER}' embedding layer ({error})") from None
    pooled = [keras.layers.GlobalAveragePooling2D(dtype="float32")(block) for block in blocks]
    pooled += [keras.layers.GlobalMaxPooling2D(dtype="float32")(block) for block in blocks]
    views = keras.Model(classifier.inputs, [classifier.output, embedding, *pooled])
    return with_flip_averaging(views) if flip_averaged else views
