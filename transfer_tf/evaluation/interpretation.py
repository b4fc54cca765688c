"""Error analysis of a trained classifier: which images it gets wrong, how badly, and which classes it confuses.

`interpret` runs the classifier once over held-out images and keeps, per
image, its name (the file, or its index), true class, scores and loss.
`Interpretation` answers the questions that follow: the top losses, the
most-confused class pairs, and the images behind each cell of the confusion
matrix. Images are decoded again only for what is shown.
"""

import csv
import dataclasses

import numpy as np

from transfer_tf.core.integrity import write_atomically
from transfer_tf.data.images import read_image
from transfer_tf.data.splits import ImageSplits
from transfer_tf.evaluation.predictions import predict_dataset

_SPLITS = ("validation", "test", "train")
_LOSS_FLOOR = 1e-7


@dataclasses.dataclass
class Interpretation:
    """A classifier's predictions on held-out images, image by image.

    Attributes:
        class_names: list of str.
        labels: int array `(n,)`. True class indices.
        scores: float array `(n, num_classes)`. Class probabilities.
        names: list of str. Each image's file (or `#index` for arrays).
        images: callable `index -> uint8 image` that reads one image again.
    """

    class_names: list
    labels: np.ndarray
    scores: np.ndarray
    names: list
    images: object = dataclasses.field(repr=False, default=None)

    @classmethod
    def from_predictions(cls, predictions, class_names, names=None, images=None):
        """From `predict_dataset`'s `Predictions` (no second pass over the images)."""
        labels = np.asarray(predictions.labels).reshape(-1).astype(int)
        names = [f"#{i}" for i in range(len(labels))] if names is None else [str(n) for n in names]
        return cls(list(class_names), labels, np.asarray(predictions.scores), names, images)

    @property
    def predicted(self):
        return self.scores.argmax(axis=1)

    @property
    def losses(self):
        """Cross-entropy of each image: `-log p(true class)`."""
        true_scores = self.scores[np.arange(len(self.labels)), self.labels]
        return -np.log(np.clip(true_scores, _LOSS_FLOOR, 1.0))

    def top_losses(self, k=9, *, mistakes_only=True):
        """Indices of the `k` images with the highest loss, highest first (ties by dataset order)."""
        order = np.argsort(-self.losses, kind="stable")
        if mistakes_only:
            order = order[self.predicted[order] != self.labels[order]]
        return order[:k]

    def confusion_matrix(self):
        """Counts `(num_classes, num_classes)`: rows the true class, columns the predicted one."""
        size = len(self.class_names)
        return np.bincount(self.labels * size + self.predicted, minlength=size * size).reshape(size, size)

    def cell(self, true, predicted):
        """Indices of the images of class `true` predicted as `predicted`, in dataset order."""
        return np.flatnonzero((self.labels == true) & (self.predicted == predicted))

    def most_confused(self, min_count=1):
        """Class pairs the classifier mixes up, most often first.

        Returns:
            list of dicts `{"true", "predicted", "count", "share"}`, where
            `share` is the fraction of the true class's images predicted as
            the other class.
        """
        matrix = self.confusion_matrix()
        totals = matrix.sum(axis=1)
        pairs = [
            {"true": self.class_names[t], "predicted": self.class_names[p], "count": int(matrix[t, p]),
             "share": float(matrix[t, p] / totals[t])}
            for t in range(len(matrix)) for p in range(len(matrix)) if t != p and matrix[t, p] >= min_count
        ]
        return sorted(pairs, key=lambda pair: (-pair["count"], -pair["share"]))

    def rows(self):
        """One dict per image: name, true and predicted label, loss, and the probability of each class."""
        losses = self.losses
        return [
            {"image": name, "true": self.class_names[label], "predicted": self.class_names[guess],
             "loss": float(loss), **{f"p({c})": float(s) for c, s in zip(self.class_names, scores)}}
            for name, label, guess, loss, scores in zip(self.names, self.labels, self.predicted, losses,
                                                        self.scores)
        ]

    def write_csv(self, path):
        """Writes `rows()` as a CSV file, highest loss first; returns its path."""
        rows = self.rows()
        rows = [rows[i] for i in np.argsort(-self.losses, kind="stable")]

        def write(partial):
            with open(partial, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["image"])
                writer.writeheader()
                writer.writerows(rows)

        return write_atomically(path, write)


def interpret(classifier, data, *, split="validation", batch_size=32):
    """Runs a classifier over held-out images and keeps what it did with each one.

    Args:
        classifier: `ImageClassifier` (or `EstimatorClassifier`) of a
            `"multiclass"` or `"binary"` task.
        data: `ImageSplits` (its `split` is used, and each image keeps its
            file's path), a tuple `(images, labels)` of arrays, or a batched,
            unshuffled `tf.data.Dataset` of `(images, labels)`.
        split: str. The split of `ImageSplits` to use. Defaults to
            `"validation"`.
        batch_size: int. For arrays. Defaults to `32`.

    Returns:
        `Interpretation`.

    Raises:
        ValueError: for a multilabel classifier, a split that holds no
            images, or data of another kind.

    Examples:

        >>> result = ttf.interpret(clf, splits)       # doctest: +SKIP
        >>> result.most_confused()[:1]                  # doctest: +SKIP
        [{'true': 'cat', 'predicted': 'dog', 'count': 7, 'share': 0.14}]
    """
    if getattr(classifier, "task", "multiclass") == "multilabel":
        raise ValueError("interpret analyses one label per image. Received: a classifier with task='multilabel'")
    dataset, names, read_again = _held_out(classifier, data, split, batch_size)
    return Interpretation.from_predictions(predict_dataset(classifier, dataset), classifier.class_names, names,
                                           read_again)


def _held_out(classifier, data, split, batch_size):
    """`(dataset, names, read one image again)` for each kind of data `interpret` takes."""
    import tensorflow as tf

    if isinstance(data, ImageSplits):
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}. Received: split={split!r}")
        dataset = getattr(data, split)
        if dataset is None:
            raise ValueError(f"The {split} split holds no images; choose another with split=.")
        files = data.files[split] if data.files else None
        if files is None:
            return dataset, None, _from_dataset(dataset)
        paths = [str(path) for path, _ in files]
        return dataset, paths, file_reader(paths, classifier.image_size, data.source.get("resize", "stretch"))
    if isinstance(data, tuple) and len(data) == 2:
        images, labels = np.asarray(data[0]), np.asarray(data[1])
        dataset = tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels)).batch(batch_size)
        return dataset, None, lambda i: np.clip(images[i], 0, 255).astype(np.uint8)
    if isinstance(data, tf.data.Dataset):
        return data, None, _from_dataset(data)
    raise ValueError(
        "data must be ImageSplits, a tuple (images, labels) or a batched tf.data.Dataset. "
        f"Received: {type(data).__name__}")


def file_reader(paths, image_size, resize):
    """Reads image `i` of `paths` again, as the classifier saw it."""
    return lambda index: read_image(paths[index], image_size, resize)


def _from_dataset(dataset):
    """Reads image `i` by running through the (unshuffled) dataset again up to it."""

    def image(index):
        seen = 0
        for images, _ in dataset:
            if index < seen + len(images):
                return np.clip(np.asarray(images[index - seen]), 0, 255).astype(np.uint8)
            seen += len(images)
        raise IndexError(index)

    return image
