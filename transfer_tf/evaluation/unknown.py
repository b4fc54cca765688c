"""The "unknown" answer: a threshold on the highest class probability, and the labels it gives.

The rejection score is the highest calibrated class probability (Hendrycks
and Gimpel, ICLR 2017). `benchmarks/unknown.py` measures it against the
energy score and the distance to the nearest training feature; it is
kept because it is the one score every exported file gives as it is (its
output is the probabilities), so a phone app applies the same threshold
(MediaPipe's `score_threshold`) without any extra output.
"""

import numpy as np
import tensorflow as tf

from transfer_tf.core.checks import is_number
from transfer_tf.evaluation.predictions import class_probabilities

UNKNOWN_LABEL = "unknown"
DEFAULT_KNOWN_KEPT = 0.95
_BATCH_SIZE = 32
_FLOAT32_SLACK = 1e-6


def choose_unknown_threshold(scores, known_kept=DEFAULT_KNOWN_KEPT):
    """The highest threshold on the top class probability that keeps `known_kept` of known images.

    Args:
        scores: array `(n, classes)` of class probabilities of known
            (validation) images.
        known_kept: float in (0, 1]. The share of those images whose top
            probability is at or above the threshold. Defaults to `0.95`.

    Returns:
        float in (0, 1].
    """
    check_known_kept(known_kept)
    top = np.sort(np.asarray(scores, np.float64).max(axis=1))
    rejected = int(np.floor(len(top) * (1.0 - known_kept) + 1e-9))  # at most this many below
    # A hair below the boundary image's score, so that float32 runtimes keep it too.
    return float(max(top[min(rejected, len(top) - 1)] - _FLOAT32_SLACK, np.finfo(np.float32).tiny))


def is_unknown(scores, threshold):
    """Per image (per row of class probabilities): whether its top probability is below `threshold`.

    The one rule of the "unknown" answer; `threshold=None` answers no image "unknown".
    """
    top = np.asarray(scores).max(axis=-1)
    return np.zeros(np.shape(top), bool) if threshold is None else top < threshold


def check_known_kept(known_kept):
    """Raises `ValueError` unless `known_kept` is a share in (0, 1]."""
    if not (is_number(known_kept) and 0 < known_kept <= 1):
        raise ValueError(f"known_kept must be a share of known images in (0, 1], such as 0.95. "
                         f"Received: known_kept={known_kept!r}")


def predict_labels(classifier, images, *, reject=False, unknown_label=UNKNOWN_LABEL):
    """The predicted class name of every image, or `unknown_label` below the classifier's threshold.

    `classifier.predict` is unchanged by the threshold; this is where it
    applies.

    Args:
        classifier: a multiclass or binary `ImageClassifier` (or
            `EstimatorClassifier` when `reject` is False).
        images: array `(n, height, width, 3)` of raw RGB pixels, or a batched
            `tf.data.Dataset` of images or of `(images, labels)`.
        reject: bool. Answer `unknown_label` for an image whose highest class
            probability is below `classifier.unknown_threshold` (chosen by
            `calibrate`). Defaults to `False`.
        unknown_label: str. Defaults to `"unknown"`.

    Returns:
        list of str, one per image, in order.

    Raises:
        ValueError: for a multilabel classifier; `reject=True` on a
            classifier without a threshold, or an `unknown_label` that is
            one of its classes; images of the wrong shape.

    Example:

        >>> ttf.calibrate(clf, splits.validation)           # doctest: +SKIP
        >>> ttf.predict_labels(clf, images, reject=True)    # doctest: +SKIP
        ['cat', 'unknown', 'dog']
    """
    if classifier.task == "multilabel":
        raise ValueError("predict_labels gives one class per image; a multilabel classifier gives a set. "
                         "Received: task='multilabel'")
    threshold = getattr(classifier, "unknown_threshold", None)
    if reject and threshold is None:
        raise ValueError("reject=True needs the classifier's unknown_threshold: choose it with "
                         "ttf.calibrate(clf, validation_data) (or train --calibrate). Received: unknown_threshold=None")
    if reject and unknown_label in classifier.class_names:
        raise ValueError(f"unknown_label names one of the classes; pass another. Received: "
                         f"unknown_label={unknown_label!r}")
    scores = np.concatenate([class_probabilities(classifier, classifier.predict_on_batch(batch))
                             for batch in _image_batches(classifier, images)])
    names = [classifier.class_names[i] for i in scores.argmax(axis=1)]
    if not reject:
        return names
    return [unknown_label if unknown else name for name, unknown in zip(names, is_unknown(scores, threshold))]


def _image_batches(classifier, images):
    if isinstance(images, tf.data.Dataset):
        for batch in images:
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
        return
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != (*classifier.image_size, 3):
        raise ValueError(f"images must be an array (n, {classifier.image_size[0]}, {classifier.image_size[1]}, 3) "
                         f"of RGB pixels. Received: images.shape={images.shape}")
    for start in range(0, len(images), _BATCH_SIZE):
        yield images[start:start + _BATCH_SIZE]
