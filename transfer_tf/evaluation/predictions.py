"""Predictions as class probabilities, and the metrics of a classifier on data."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.data.pipeline import recipe_of
from transfer_tf.evaluation.metrics import DEFAULT_TOP_K, THRESHOLD, classification_metrics

MATRIX_PRINTED_UP_TO = 20  # classes; a wider confusion matrix is left to the plot


@dataclasses.dataclass
class Predictions:
    """A classifier's scores on a dataset, in dataset order.

    Attributes:
        labels: array. True class indices `(n,)`, or multi-hot rows.
        scores: array `(n, num_classes)`, from `class_probabilities`.
        mistakes: list of `(index, image)`. The first misclassified images
            (uint8 RGB) with their index in the dataset; as many as asked.
    """

    labels: np.ndarray
    scores: np.ndarray
    mistakes: list


def class_probabilities(classifier, outputs):
    """Per-class scores `(n, num_classes)` from the classifier's raw outputs.

    A binary classifier has one sigmoid output, the score of class 1; the
    score of class 0 is its complement. Multiclass outputs are softmax
    probabilities; multilabel outputs are independent sigmoid scores.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if classifier.task == "binary":
        positive = outputs.reshape(-1)
        return np.stack([1.0 - positive, positive], axis=1)
    return outputs


def predicted_labels(task, scores):
    """Class indices (or multi-hot rows for `"multilabel"`) from per-class scores."""
    return (scores >= THRESHOLD).astype(int) if task == "multilabel" else scores.argmax(axis=1)


def predict_dataset(classifier, dataset, *, keep_mistakes=0):
    """Runs a classifier over a batched dataset of `(images, labels)`.

    Args:
        classifier: `ImageClassifier`.
        dataset: batched `tf.data.Dataset` of raw images and labels.
        keep_mistakes: int. How many misclassified images to keep, first
            come first kept. Defaults to `0`.

    Returns:
        `Predictions`.

    Raises:
        ValueError: if the dataset is empty.
    """
    labels, scores, mistakes = [], [], []
    seen = 0
    for images, batch_labels in dataset:
        batch_scores = class_probabilities(classifier, classifier.predict_on_batch(images))
        batch_labels = np.asarray(batch_labels)
        if len(mistakes) < keep_mistakes:
            for i in _wrong(classifier.task, batch_scores, batch_labels)[: keep_mistakes - len(mistakes)]:
                mistakes.append((seen + int(i), _uint8(images[i])))
        scores.append(batch_scores)
        labels.append(batch_labels)
        seen += len(batch_labels)
    if not labels:
        raise ValueError("The dataset to evaluate on holds no images.")
    return Predictions(np.concatenate(labels), np.concatenate(scores), mistakes)


def predictions_from_outputs(classifier, dataset, held_out, *, keep_mistakes=0):
    """`Predictions` from the head outputs training left (`HeldOutOutputs`), without running the model.

    Only the mistakes kept are decoded. Returns `None` unless `held_out`
    belongs to exactly this dataset's images and labels (a dataset
    transfer_tf built); the caller then runs `predict_dataset`.
    """
    recipe = recipe_of(dataset)
    if held_out is None or recipe is None or recipe.fingerprint() != held_out.fingerprint:
        return None
    outputs = keras.ops.convert_to_numpy(classifier.calibration(held_out.outputs))
    scores = class_probabilities(classifier, outputs)
    labels = np.asarray(recipe.labels)
    shown = _wrong(classifier.task, scores, labels)[:keep_mistakes]
    images = recipe.images_for(shown) if len(shown) else []
    return Predictions(labels, scores, [(int(i), _uint8(image)) for i, image in zip(shown, images)])


def _wrong(task, scores, labels):
    """Indices of the misclassified rows."""
    truth = np.asarray(labels).astype(int)
    if task != "multilabel":
        truth = truth.reshape(-1)
    wrong = predicted_labels(task, scores) != truth
    return np.flatnonzero(wrong.any(axis=1) if wrong.ndim == 2 else wrong)


def _uint8(image):
    return np.clip(np.asarray(image), 0, 255).astype(np.uint8)


def prediction_metrics(classifier, predictions, *, top_k=DEFAULT_TOP_K):
    """`metrics.classification_metrics` of a classifier's `Predictions`."""
    return classification_metrics(
        predictions.labels, predictions.scores, classifier.class_names,
        task=classifier.task, top_k=top_k,
    )


def evaluate(classifier, dataset, *, top_k=DEFAULT_TOP_K):
    """Metrics of a classifier on a batched dataset of `(images, labels)`.

    Args:
        classifier: `ImageClassifier`.
        dataset: batched `tf.data.Dataset` of raw images and labels (class
            indices, or multi-hot rows for `"multilabel"`).
        top_k: tuple of int. The k of each top-k accuracy (those below the
            number of classes). Defaults to `(3, 5)`.

    Returns:
        A dict of plain numbers, lists and dicts (JSON-serialisable), as
        `metrics.classification_metrics` describes: accuracy, balanced and
        top-k accuracy, per-class precision/recall/F1/support/ROC-AUC, macro
        and weighted F1, ROC-AUC, and the confusion matrix in counts and
        normalised (or the multi-label metrics).

    Raises:
        TypeError: if `dataset` is not a `tf.data.Dataset`.
        ValueError: if the dataset is empty.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "vgg16", num_classes=2, image_size=32, weights=None)
        >>> data = tf.data.Dataset.from_tensor_slices(
        ...     (np.zeros((4, 32, 32, 3)), [0, 1, 0, 1])).batch(2)
        >>> evaluate(clf, data)["num_images"]
        4
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "evaluate takes a batched tf.data.Dataset of (images, labels), e.g. "
            f"splits.test. Received: {type(dataset).__name__}"
        )
    return prediction_metrics(classifier, predict_dataset(classifier, dataset), top_k=top_k)


def format_metrics(metrics):
    """A readable table of `evaluate`'s result: headline figures, then per class."""
    if metrics.get("task") == "multilabel" or "subset_accuracy" in metrics:
        headline = [
            f"{metrics['num_images']} images: subset accuracy {metrics['subset_accuracy']:.1%}, "
            f"label accuracy {metrics['label_accuracy']:.1%}",
            f"F1: micro {metrics['micro_f1']:.3f}, macro {metrics['macro_f1']:.3f}, "
            f"weighted {metrics['weighted_f1']:.3f}, samples {metrics['samples_f1']:.3f}; "
            f"ROC-AUC {_number(metrics['roc_auc'])}",
        ]
        return "\n".join(headline + _per_class_table(metrics["per_class"]))
    top_k = "".join(f", top-{k} {v:.1%}" for k, v in metrics["top_k_accuracy"].items())
    lines = [
        f"{metrics['num_images']} images: accuracy {metrics['accuracy']:.1%}, "
        f"balanced accuracy {metrics['balanced_accuracy']:.1%}{top_k}",
        f"F1: macro {metrics['macro_f1']:.3f}, weighted {metrics['weighted_f1']:.3f}; "
        f"ROC-AUC {_number(metrics['roc_auc'])}",
        *_per_class_table(metrics["per_class"]),
    ]
    if len(metrics["per_class"]) <= MATRIX_PRINTED_UP_TO:
        lines.append("Confusion matrix (rows: true class, columns: predicted):")
        lines.extend(_matrix_rows(list(metrics["per_class"]), metrics["confusion_matrix"]))
    return "\n".join(lines)


def _per_class_table(per_class):
    names = list(per_class)
    width = max(len(n) for n in [*names, "class"])
    lines = [f"{'class':<{width}}  precision     recall         f1    roc-auc    support"]
    for name in names:
        row = per_class[name]
        lines.append(
            f"{name:<{width}}  {row['precision']:>9.3f}  {row['recall']:>9.3f}  "
            f"{row['f1']:>9.3f}  {_number(row['roc_auc']):>9}  {row['support']:>9}"
        )
    return lines


def _matrix_rows(names, matrix):
    width = max(len(n) for n in names)
    cell = max(6, *(len(str(v)) for row in matrix for v in row), *(len(n) for n in names))
    lines = [" " * width + "  " + " ".join(f"{n[:cell]:>{cell}}" for n in names)]
    for name, row in zip(names, matrix):
        lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    return lines


def _number(value):
    return "n/a" if value is None else f"{value:.3f}"
