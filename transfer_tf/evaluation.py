"""Predictions as class probabilities, and the metrics of a classifier on data."""

import numpy as np
import tensorflow as tf
from sklearn import metrics as skm


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


def predict_dataset(classifier, dataset, *, verbose=0):
    """Runs a classifier over a batched dataset of `(images, labels)`.

    Returns:
        `(labels, probabilities)` as NumPy arrays, in dataset order.
    """
    labels, scores = [], []
    for images, batch_labels in dataset:
        scores.append(class_probabilities(classifier, classifier(images, training=False)))
        labels.append(np.asarray(batch_labels))
    if not labels:
        raise ValueError("The dataset to evaluate on holds no images.")
    return np.concatenate(labels), np.concatenate(scores)


def evaluate(classifier, dataset):
    """Metrics of a classifier on a batched dataset of `(images, labels)`.

    Args:
        classifier: `ImageClassifier`.
        dataset: batched `tf.data.Dataset` of raw images and labels (class
            indices, or multi-hot rows for `"multilabel"`).

    Returns:
        A dict of plain numbers and lists (JSON-serialisable). For one label
        per image: `num_images`, `accuracy`, `balanced_accuracy`,
        `per_class` (precision, recall, F1 and support per class name) and
        `confusion_matrix` (rows: true class, columns: predicted). For
        `"multilabel"`: `num_images`, `subset_accuracy`, `label_accuracy`.

    Raises:
        ValueError: if the dataset is empty.

    Example:

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
    labels, scores = predict_dataset(classifier, dataset)
    if classifier.task == "multilabel":
        predicted = (scores >= 0.5).astype(int)
        truth = labels.astype(int)
        return {
            "num_images": int(len(truth)),
            "subset_accuracy": float(skm.accuracy_score(truth, predicted)),
            "label_accuracy": float((truth == predicted).mean()),
        }
    truth = labels.reshape(-1).astype(int)
    predicted = scores.argmax(axis=1)
    indices = list(range(classifier.num_classes))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=indices, zero_division=0
    )
    present = np.unique(truth)
    return {
        "num_images": int(len(truth)),
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        # Averaged over the classes present, so a class absent from the data does not count.
        "balanced_accuracy": float(recall[present].mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i]),
            }
            for i, name in enumerate(classifier.class_names)
        },
        "confusion_matrix": skm.confusion_matrix(truth, predicted, labels=indices).tolist(),
    }


def format_metrics(metrics):
    """A readable table of `evaluate`'s result."""
    if "accuracy" not in metrics:
        return (
            f"{metrics['num_images']} images: subset accuracy {metrics['subset_accuracy']:.1%}, "
            f"label accuracy {metrics['label_accuracy']:.1%}"
        )
    names = list(metrics["per_class"])
    width = max(len(n) for n in [*names, "class"])
    lines = [
        f"{metrics['num_images']} images: accuracy {metrics['accuracy']:.1%}, "
        f"balanced accuracy {metrics['balanced_accuracy']:.1%}",
        f"{'class':<{width}}  precision     recall         f1    support",
    ]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(
            f"{name:<{width}}  {row['precision']:>9.3f}  {row['recall']:>9.3f}  "
            f"{row['f1']:>9.3f}  {row['support']:>9}"
        )
    return "\n".join(lines)
