"""The serving model and its SavedModel, through Keras's own `ExportArchive`."""

import keras
import tensorflow as tf
from keras import ops

SERVING_INPUT = "images"
SERVING_OUTPUT = "probabilities"
UINT8_SIGNATURE = "serving_uint8"
LABELS_SIGNATURE = "labels"


def serving_model(classifier):
    """A functional model from raw float32 images to one score per class.

    The classifier's preprocessing stays inside. A binary classifier's single
    sigmoid becomes two columns `[1 - p, p]`, so every export has one score
    per label in `labels.txt` order.

    Args:
        classifier: `ImageClassifier`.

    Returns:
        `keras.Model` with input `images` and output `probabilities`.
    """
    images = keras.Input((*classifier.image_size, 3), dtype="float32", name=SERVING_INPUT)
    scores = classifier(images, training=False)
    if classifier.task == "binary":
        scores = ops.concatenate([1.0 - scores, scores], axis=-1)
    scores = keras.layers.Identity(name=SERVING_OUTPUT)(scores)
    return keras.Model(images, scores, name=f"{classifier.name}_serving")


def write_saved_model(model, class_names, directory):
    """Writes a SavedModel with raw-image signatures and the labels.

    Signatures: `serving_default` takes float32 images, `serving_uint8`
    uint8 images, both `(N, H, W, 3)` in [0, 255] under the input name
    `images`, and return `{"probabilities": (N, classes)}`; `labels` takes
    nothing and returns `{"labels": class names}`.

    Args:
        model: the `serving_model`.
        class_names: list of str.
        directory: str or path. Must not exist yet.
    """
    height, width = model.input_shape[1:3]
    archive = keras.export.ExportArchive()
    archive.track(model)
    labels = tf.constant(list(class_names))

    def scores(images):
        return {SERVING_OUTPUT: model(tf.cast(images, tf.float32), training=False)}

    for name, dtype in (("serving_default", tf.float32), (UINT8_SIGNATURE, tf.uint8)):
        archive.add_endpoint(
            name, scores, input_signature=[tf.TensorSpec([None, height, width, 3], dtype, SERVING_INPUT)]
        )
    archive.add_endpoint(LABELS_SIGNATURE, tf.function(lambda: {"labels": labels}), input_signature=[])
    archive.write_out(str(directory), verbose=False)
