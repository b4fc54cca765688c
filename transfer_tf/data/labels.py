"""Counting labels, and the balanced class weights that follow from the counts."""

import numpy as np


def class_counts(labels, num_classes):
    """Images per class: class indices `(n,)` counted, or multi-hot rows `(n, k)` summed."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[-1] > 1:  # multi-hot
        return [int(c) for c in labels.sum(axis=0)]
    return [int(c) for c in np.bincount(labels.reshape(-1).astype(np.int64), minlength=num_classes)]


def balanced_class_weight(counts, class_names):
    """Weights `n / (k * count)` per class index from the training counts.

    Raises:
        ValueError: if a class has no training images.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if (counts == 0).any():
        missing = [class_names[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(
            f"class_weight='balanced' needs every class in train_data; no images of {missing}."
        )
    total = counts.sum()
    return {i: float(total / (len(counts) * c)) for i, c in enumerate(counts)}
