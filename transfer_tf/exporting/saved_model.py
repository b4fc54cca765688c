"""The serving model and its SavedModel, through Keras's own `ExportArchive`."""

import keras
import tensorflow as tf
from keras import ops

SERVING_SIGNATURE = "serving_default"
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
    # What `archive.track(model)` keeps, without its search of every layer for lookup tables (an image
    # model has none): that search traced the network three more times, a third of the time here.
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        archive.add_variable_collection(name, getattr(model, name))
    labels = tf.constant(list(class_names))

    def spec(dtype):
        return [tf.TensorSpec([None, height, width, 3], dtype, SERVING_INPUT)]

    scores = tf.function(lambda images: {SERVING_OUTPUT: model(images, training=False)},
                         input_signature=spec(tf.float32))
    archive.add_endpoint(SERVING_SIGNATURE, scores)
    # Calls the float32 graph rather than tracing the network again.
    archive.add_endpoint(UINT8_SIGNATURE, tf.function(lambda images: scores(tf.cast(images, tf.float32)),
                                                      input_signature=spec(tf.uint8)))
    archive.add_endpoint(LABELS_SIGNATURE, tf.function(lambda: {"labels": labels}), input_signature=[])
    archive.write_out(str(directory), verbose=False)


def signature_runner(signature):
    """`run(batch)`: the probabilities a loaded SavedModel's `serving_default` gives for raw float32 images."""
    return lambda batch: signature(**{SERVING_INPUT: tf.constant(batch, tf.float32)})[SERVING_OUTPUT].numpy()
