"""Metrics of a classifier's predictions, computed with scikit-learn.

`classification_metrics` takes labels and per-class scores as arrays, so it
needs no model; `evaluation.evaluate` runs a classifier over data and calls
it. The result is a dict of plain numbers, lists and dicts (JSON-ready).
"""

import warnings

import numpy as np
from sklearn import metrics as skm

TASKS = ("multiclass", "binary", "multilabel")
DEFAULT_TOP_K = (3, 5)
THRESHOLD = 0.5


def classification_metrics(labels, scores, class_names, *, task="multiclass", top_k=DEFAULT_TOP_K):
    """Metrics of per-class scores against the true labels.

    Args:
        labels: array. Class indices `(n,)`, or multi-hot rows
            `(n, num_classes)` for `"multilabel"`.
        scores: array `(n, num_classes)`. A score per class: softmax
            probabilities, or `[1-p, p]` for `"binary"`, or independent
            sigmoid scores for `"multilabel"` (positive from 0.5).
        class_names: list of str. One name per score column.
        task: str. `"multiclass"`, `"binary"` or `"multilabel"`. Defaults to
            `"multiclass"`.
        top_k: tuple of int. The k of each top-k accuracy; those not below
            the number of classes are left out (they would be 1). Defaults to
            `(3, 5)`.

    Returns:
        dict. For one label per image: `task`, `num_images`, `class_names`,
        `accuracy`, `balanced_accuracy`, `top_k_accuracy` (`{"3": ...}`),
        `macro_f1`, `weighted_f1`, `roc_auc` (binary AUC of class 1, or the
        mean one-vs-rest AUC over the classes present), `per_class`
        (precision, recall, F1, support and one-vs-rest ROC-AUC per class
        name), `confusion_matrix` (counts; rows true, columns predicted) and
        `confusion_matrix_normalized` (each row divided by its count).
        For `"multilabel"`: `task`, `num_images`, `class_names`,
        `subset_accuracy`, `label_accuracy`, `micro_f1`, `macro_f1`,
        `weighted_f1`, `samples_f1`, `roc_auc`, `per_class` and
        `label_confusion` (per label `[[tn, fp], [fn, tp]]`). An AUC is
        `None` where it is undefined (a class never or always present).

    Raises:
        ValueError: for an unknown task, or labels and scores that do not fit
            each other or the class names.

    Examples:

        >>> m = classification_metrics([0, 1, 1], [[.9, .1], [.4, .6], [.7, .3]],
        ...                            ["cat", "dog"], task="binary")
        >>> m["accuracy"], m["roc_auc"]
        (0.6666666666666666, 1.0)
    """
    labels, scores = _checked(labels, scores, class_names, task)
    if task == "multilabel":
        return _multilabel(labels, scores, list(class_names))
    return _single_label(labels, scores, list(class_names), task, top_k)


def balanced_accuracy(truth, predicted):
    """The mean recall over the classes present in `truth`: a class absent from the data does not count."""
    truth, predicted = np.asarray(truth).reshape(-1), np.asarray(predicted).reshape(-1)
    return float(np.mean([np.mean(predicted[truth == c] == c) for c in np.unique(truth)]))


def _single_label(truth, scores, class_names, task, top_k):
    indices = list(range(len(class_names)))
    predicted = scores.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=indices, zero_division=0
    )
    auc = [_auc(truth == i, scores[:, i]) for i in indices]
    overall_auc = auc[1] if task == "binary" else _mean_auc(auc)
    return {
        "task": task,
        "num_images": int(len(truth)),
        "class_names": class_names,
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "balanced_accuracy": balanced_accuracy(truth, predicted),
        "top_k_accuracy": {
            str(k): float(skm.top_k_accuracy_score(truth, scores, k=k, labels=indices))
            for k in top_k if k < len(class_names)
        },
        "macro_f1": float(skm.f1_score(truth, predicted, average="macro", zero_division=0)),
        "weighted_f1": float(skm.f1_score(truth, predicted, average="weighted", zero_division=0)),
        "roc_auc": overall_auc,
        "per_class": _per_class(class_names, precision, recall, f1, support, auc),
        "confusion_matrix": skm.confusion_matrix(truth, predicted, labels=indices).tolist(),
        "confusion_matrix_normalized": skm.confusion_matrix(
            truth, predicted, labels=indices, normalize="true").tolist(),
    }


def _multilabel(truth, scores, class_names):
    predicted = (scores >= THRESHOLD).astype(int)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predicted, zero_division=0
    )
    auc = [_auc(truth[:, i] == 1, scores[:, i]) for i in range(len(class_names))]

    def f1_score(average):
        return float(skm.f1_score(truth, predicted, average=average, zero_division=0))

    return {
        "task": "multilabel",
        "num_images": int(len(truth)),
        "class_names": class_names,
        "subset_accuracy": float(skm.accuracy_score(truth, predicted)),
        "label_accuracy": float(1.0 - skm.hamming_loss(truth, predicted)),
        "micro_f1": f1_score("micro"),
        "macro_f1": f1_score("macro"),
        "weighted_f1": f1_score("weighted"),
        "samples_f1": f1_score("samples"),
        "roc_auc": _mean_auc(auc),
        "per_class": _per_class(class_names, precision, recall, f1, support, auc),
        "label_confusion": skm.multilabel_confusion_matrix(truth, predicted).tolist(),
    }


def _per_class(class_names, precision, recall, f1, support, auc):
    return {
        name: {
            "precision": float(precision[i]), "recall": float(recall[i]),
            "f1": float(f1[i]), "support": int(support[i]), "roc_auc": auc[i],
        }
        for i, name in enumerate(class_names)
    }


def _mean_auc(auc):
    """The mean of the defined per-class AUCs, or `None` when none is defined."""
    defined = [a for a in auc if a is not None]
    return float(np.mean(defined)) if defined else None


def _auc(is_class, score):
    """ROC-AUC of one class against the rest; `None` if only one side is present."""
    if is_class.all() or not is_class.any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(skm.roc_auc_score(is_class, score))


def _checked(labels, scores, class_names, task):
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}. Received: task={task!r}")
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    num_classes = len(class_names)
    if scores.ndim != 2 or scores.shape[1] != num_classes:
        raise ValueError(
            f"scores must have shape (num_images, {num_classes}): one column per class name. "
            f"Received: scores.shape={scores.shape}"
        )
    expected = (len(scores), num_classes) if task == "multilabel" else (len(scores),)
    if task != "multilabel" and labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.shape != expected:
        raise ValueError(
            f"labels must have shape {expected} for task={task!r} and {len(scores)} score rows. "
            f"Received: labels.shape={labels.shape}"
        )
    if not len(labels):
        raise ValueError("There are no predictions to score (0 images).")
    labels = labels.astype(int)
    if labels.min() < 0 or labels.max() >= (2 if task == "multilabel" else num_classes):
        what = "0 or 1" if task == "multilabel" else f"class indices 0..{num_classes - 1}"
        raise ValueError(
            f"labels must be {what}. Received: values from {labels.min()} to {labels.max()}"
        )
    return labels, scores
