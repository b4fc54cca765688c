"""Calibration: a temperature fitted on validation images, and how well probabilities match accuracy.

Temperature scaling (Guo et al., ICML 2017) divides the logits by one
number, fitted to minimise the negative log-likelihood of held-out
labels. It cannot change a top-1 prediction. The expected calibration
error (ECE) compares, in 15 bins of confidence, the mean confidence with
the accuracy of the images in the bin. On the calibrated probabilities of
the same images, `calibrate` then chooses the threshold below which an
image is answered "unknown" (see `unknown`).
"""

import dataclasses

import numpy as np
from scipy.optimize import minimize_scalar

from transfer_tf.data.inputs import evaluation_data
from transfer_tf.evaluation.predictions import predict_dataset
from transfer_tf.evaluation.unknown import (
    DEFAULT_KNOWN_KEPT,
    check_known_kept,
    choose_unknown_threshold,
    is_unknown,
)
from transfer_tf.model.classifier import ImageClassifier

ECE_BINS = 15
_EPSILON = 1e-7
_LOG_TEMPERATURE_RANGE = (-3.0, 3.0)  # temperatures from 0.05 to 20


@dataclasses.dataclass
class CalibrationResult:
    """What `calibrate` fitted and measured, on the validation images.

    Attributes:
        temperature: float. The fitted temperature, now the classifier's.
        ece_before, ece_after: float. Expected calibration error (15 bins).
        nll_before, nll_after: float. Mean negative log-likelihood.
        accuracy: float. Top-1 accuracy (the same before and after).
        num_images: int.
        unknown_threshold: float or `None`. The top class probability below
            which an image is answered "unknown", now the classifier's.
        known_kept: float or `None`. The share of validation images asked
            to be kept at that threshold; `kept` is the share that was.
        reliability_before, reliability_after: dict with `confidence`,
            `accuracy` and `count` per bin (`None` for an empty bin), for
            a reliability diagram (`plots.plot_reliability`).
    """

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    accuracy: float
    num_images: int
    unknown_threshold: object
    known_kept: object
    kept: object
    reliability_before: dict
    reliability_after: dict

    def to_dict(self):
        return dataclasses.asdict(self)


def calibrate(classifier, validation_data, *, known_kept=DEFAULT_KNOWN_KEPT):
    """Fits the temperature of a classifier's probabilities on validation images, and its "unknown" threshold.

    Args:
        classifier: `ImageClassifier` of a `"multiclass"` or `"binary"` task.
        validation_data: a batched `tf.data.Dataset` of `(images, labels)` or
            a tuple `(images, labels)` of arrays, as `fine_tune` takes it.
            Never the training images: their scores are over-confident by
            construction.
        known_kept: float in (0, 1] or `None`. The share of validation
            images whose calibrated top probability must stay at or above
            the "unknown" threshold (`predict_labels(..., reject=True)`).
            `None` leaves the classifier without a threshold. Defaults to
            `0.95`.

    Returns:
        `CalibrationResult`. The classifier now carries the temperature
        (`classifier.temperature`) and the threshold
        (`classifier.unknown_threshold`); both are saved and exported with it.

    Raises:
        TypeError: for a classifier other than an `ImageClassifier` (a
            scikit-learn head has no logits to scale).
        ValueError: for a multilabel classifier, data of the wrong shape, or
            validation images of only one class.

    Example:

        >>> result = ttf.calibrate(clf, splits.validation)   # doctest: +SKIP
        >>> print(f"ECE {result.ece_before:.3f} -> {result.ece_after:.3f}")  # doctest: +SKIP
    """
    if not isinstance(classifier, ImageClassifier):
        raise TypeError(f"calibrate needs an ImageClassifier (a dense head whose logits it scales). "
                        f"Received: {type(classifier).__name__}")
    if classifier.task == "multilabel":
        raise ValueError("calibrate fits one temperature for a multiclass or binary classifier. "
                         "Received: task='multilabel'")
    if known_kept is not None:
        check_known_kept(known_kept)
    dataset = evaluation_data(classifier, validation_data, "validation_data")
    previous = classifier.temperature, classifier.unknown_threshold
    classifier.unknown_threshold = None  # set_temperature would warn that it no longer applies
    classifier.set_temperature(1.0)
    try:
        predictions = predict_dataset(classifier, dataset)
    finally:
        classifier.set_temperature(previous[0])
        classifier.unknown_threshold = previous[1]
    labels = np.asarray(predictions.labels).reshape(-1).astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError(f"Calibration needs validation images of at least two classes. Received: "
                         f"{len(labels)} images, all of class {classifier.class_names[labels[0]]!r}")
    logits = _logits(predictions.scores)
    fitted = minimize_scalar(lambda log_t: _nll(logits / np.exp(log_t), labels),
                             bounds=_LOG_TEMPERATURE_RANGE, method="bounded")
    temperature = float(np.exp(fitted.x))
    classifier.unknown_threshold = None  # chosen below, for the new probabilities
    classifier.set_temperature(temperature)
    before, after = _softmax(logits), _softmax(logits / temperature)
    threshold = None if known_kept is None else choose_unknown_threshold(after, known_kept)
    classifier.set_unknown_threshold(threshold)
    return CalibrationResult(
        temperature=temperature, ece_before=expected_calibration_error(before, labels),
        ece_after=expected_calibration_error(after, labels), nll_before=_nll(logits, labels),
        nll_after=_nll(logits / temperature, labels), accuracy=float(np.mean(before.argmax(1) == labels)),
        num_images=len(labels), unknown_threshold=threshold, known_kept=known_kept,
        kept=None if threshold is None else float(np.mean(~is_unknown(after, threshold))),
        reliability_before=reliability(before, labels),
        reliability_after=reliability(after, labels))


def calibration_lines(result):
    """What a `CalibrationResult` (or its `to_dict()`) found, in two or three sentences."""
    r = result if isinstance(result, dict) else result.to_dict()
    lines = [f"Calibrated on {r['num_images']} validation images: temperature {r['temperature']:.3f}, "
             f"expected calibration error {r['ece_before']:.3f} -> {r['ece_after']:.3f}, "
             f"negative log-likelihood {r['nll_before']:.3f} -> {r['nll_after']:.3f}."]
    if r["unknown_threshold"] is None:
        lines.append("No 'unknown' threshold was chosen.")
    else:
        lines.append(f"'unknown' below a top class probability of {r['unknown_threshold']:.4f}: it keeps "
                     f"{r['kept']:.1%} of the validation images (asked: {r['known_kept']:.0%}).")
    return lines


def expected_calibration_error(probabilities, labels, bins=ECE_BINS):
    """The share-weighted mean gap between confidence and accuracy over `bins` equal-width bins.

    Args:
        probabilities: array `(n, classes)`; each row sums to 1.
        labels: array `(n,)` of class indices.
        bins: int. Defaults to `15`.

    Returns:
        float in [0, 1].
    """
    table = reliability(probabilities, labels, bins)
    total = sum(table["count"])
    return float(sum(count * abs(conf - acc) for conf, acc, count in
                     zip(table["confidence"], table["accuracy"], table["count"]) if count) / total)


def reliability(probabilities, labels, bins=ECE_BINS):
    """Per confidence bin: the mean confidence, the accuracy, and the number of images."""
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels).reshape(-1)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    table = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        chosen = which == b
        count = int(chosen.sum())
        table["count"].append(count)
        table["confidence"].append(float(confidence[chosen].mean()) if count else None)
        table["accuracy"].append(float(correct[chosen].mean()) if count else None)
    return table


def _logits(scores):
    """Logits up to a per-image constant: log-probabilities (a binary model's `[1 - p, p]` too)."""
    return np.log(np.clip(np.asarray(scores, np.float64), _EPSILON, 1.0))


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _nll(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())
