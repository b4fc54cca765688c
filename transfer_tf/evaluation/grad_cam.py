"""Grad-CAM (Selvaraju et al., 2017): where in the image the classifier looked for a class.

The gradient of the class's score before the softmax with respect to a
feature map of the base, averaged over the map's positions, weights each
channel; the weighted sum of the channels, rectified, is the heat map,
resized to the input. It runs the base in inference mode and changes nothing in the
classifier. Keras 3's Grad-CAM example computes the same; `tf-keras-vis` is
tf.keras-only.
"""

import numpy as np
import tensorflow as tf

from transfer_tf.backbones.blocks import split_base
from transfer_tf.core.checks import check_int
from transfer_tf.evaluation.predictions import class_probabilities

_EPSILON = 1e-7


def grad_cam(classifier, images, class_index=None, *, block=None, batch_size=32):
    """Grad-CAM heat maps of a classifier's images, one per image, at its input size.

    Args:
        classifier: `ImageClassifier` of a `"multiclass"` or `"binary"` task.
        images: array `(n, height, width, 3)` of raw RGB pixels (0-255) at
            the classifier's image size.
        class_index: int, sequence of `n` ints, or `None`. The class whose
            evidence is mapped; `None` for each image's predicted class.
            Defaults to `None`.
        block: str or `None`. The block of the base whose output is mapped
            (see `transfer-tf backbones`); `None` for the base's last feature
            map, the usual choice. Defaults to `None`.
        batch_size: int. Images per gradient pass. Defaults to `32`.

    Returns:
        float32 array `(n, height, width)` in [0, 1]: 1 where the evidence
        is strongest in each image; all zeros where no position speaks for
        the class.

    Raises:
        ValueError: for images of another shape, a class index out of range,
            an unknown block, or a multilabel classifier.

    Examples:

        >>> maps = ttf.grad_cam(clf, images)          # doctest: +SKIP
        >>> maps.shape == (len(images), *clf.image_size)  # doctest: +SKIP
        True
    """
    images = _checked_images(classifier, images)
    check_int("batch_size", batch_size, minimum=1)
    if classifier.task == "multilabel":
        raise ValueError("grad_cam maps one class of a multiclass or binary classifier. Received: task='multilabel'")
    classes = _class_indices(classifier, class_index, images, batch_size)
    bottom, top = _cut(classifier, block)
    maps = [_batch_maps(classifier, bottom, top, images[i:i + batch_size], classes[i:i + batch_size])
            for i in range(0, len(images), batch_size)]
    return np.concatenate(maps) if maps else np.zeros((0, *classifier.image_size), np.float32)


def _batch_maps(classifier, bottom, top, images, classes):
    activations = tf.cast(bottom(classifier.preprocessor(tf.constant(images)), training=False), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(activations)
        outputs = tf.cast(classifier.head(top(activations, training=False), training=False), tf.float32)
        evidence = _class_score(classifier.task, outputs, classes)
    gradients = tape.gradient(evidence, activations)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(channel_weights * activations, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, classifier.image_size, method="bilinear")[..., 0].numpy()
    peaks = cam.reshape(len(cam), -1).max(axis=1)
    scale = np.where(peaks > 0, peaks, 1.0)[:, None, None]
    return np.clip(cam / scale, 0.0, 1.0).astype(np.float32)


def _class_score(task, outputs, classes):
    """The summed score of each image's class before the softmax (its gradient is per image).

    The head outputs probabilities; `log p_c - mean_k log p_k` equals the
    class's logit minus the mean logit, the pre-softmax score Grad-CAM uses
    up to a constant shared by every class (for a sigmoid output, +-logit).
    Its gradient does not vanish when the model is sure, as that of `log p_c`
    does.
    """
    classes = tf.constant(classes, tf.int32)
    if task == "binary":
        positive = tf.reshape(outputs, [-1])
        logit = tf.math.log(positive + _EPSILON) - tf.math.log(1.0 - positive + _EPSILON)
        return tf.reduce_sum(tf.where(classes == 1, logit, -logit))
    log_probabilities = tf.math.log(outputs + _EPSILON)
    chosen = tf.gather(log_probabilities, classes, axis=1, batch_dims=1)
    return tf.reduce_sum(chosen - tf.reduce_mean(log_probabilities, axis=1))


def _cut(classifier, block):
    """`(bottom, top)`: the base up to the mapped feature map, and the rest of it (identity when none)."""
    identity = lambda x, training=False: x  # noqa: E731
    if block is None:
        return classifier.base, identity
    spec = classifier.backbone_spec
    if spec is None:
        raise ValueError(f"block= needs a registered backbone; this base is a custom one. Received: block={block!r}")
    names = spec.block_names
    if block not in names:
        raise ValueError(f"block must be one of {names} ({spec.name}). Received: block={block!r}")
    if block == names[-1]:
        return classifier.base, identity
    return split_base(classifier.base, spec, names[names.index(block) + 1])


def _checked_images(classifier, images):
    images = np.asarray(images, dtype=np.float32)
    expected = (*classifier.image_size, 3)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(
            f"images must be an array (n, {expected[0]}, {expected[1]}, 3) of raw RGB pixels at the "
            f"classifier's image size. Received: shape {images.shape}")
    return images


def _class_indices(classifier, class_index, images, batch_size):
    if class_index is None:
        scores = class_probabilities(classifier, classifier.predict(images, batch_size=batch_size, verbose=0))
        return scores.argmax(axis=1)
    indices = np.broadcast_to(np.asarray(class_index), (len(images),)).astype(int)
    if ((indices < 0) | (indices >= classifier.num_classes)).any():
        raise ValueError(f"class_index must be in [0, {classifier.num_classes}). Received: class_index={class_index}")
    return indices
