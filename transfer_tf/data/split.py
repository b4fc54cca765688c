"""Stable train/validation/test assignment by hashing a name.

Each item goes to a split by a hash of its key (for files, the path inside
the class folder) and the seed, compared with the split fractions, as
TensorFlow Hub's `retrain.py` did. An item's split therefore depends on its
own name only: adding images to a folder never moves existing images to
another split, and every class is split by the same fractions on its own.
The fractions are met on average, not exactly; the counts per class are
reported.
"""

import hashlib

import numpy as np

SPLITS = ("train", "validation", "test")


def validate_fractions(validation_split, test_split):
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")
    if validation_split + test_split >= 1:
        raise ValueError(
            "validation_split + test_split must leave images for training (sum < 1). "
            f"Received: validation_split={validation_split}, test_split={test_split}"
        )


def assign_split(key, *, seed, validation_split, test_split):
    """Returns `"train"`, `"validation"` or `"test"` for one item's key."""
    digest = hashlib.sha1(f"{seed}/{key}".encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    if fraction < validation_split:
        return "validation"
    if fraction < validation_split + test_split:
        return "test"
    return "train"


def stratified_sample(labels, count, *, seed):
    """Indices of `count` items drawn from each class in proportion to its size, and the rest.

    Each class gets its share of `count` (largest remainders round up), drawn
    at random with `seed`, so the sample keeps the classes' proportions.

    Args:
        labels: array `(n,)` of class indices.
        count: int. Items in the sample, from 1 to `n - 1`.
        seed: int. Seed of the draw.

    Returns:
        `(sample, rest)`: two sorted index arrays that partition `range(n)`.

    Raises:
        ValueError: if `count` is not an int in `[1, n - 1]`.

    Examples:

        >>> sample, rest = stratified_sample(np.array([0] * 6 + [1] * 3), 3, seed=0)
        >>> np.bincount(np.array([0] * 6 + [1] * 3)[sample]).tolist()
        [2, 1]
    """
    labels = np.asarray(labels)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 < count < len(labels):
        raise ValueError(
            f"count must be an int from 1 to {len(labels) - 1} (the number of items - 1). "
            f"Received: count={count!r}")
    classes, sizes = np.unique(labels, return_counts=True)
    shares = sizes * count / len(labels)
    per_class = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - per_class), kind="stable")[: count - per_class.sum()]:
        per_class[i] += 1
    rng = np.random.default_rng(seed)
    sample = np.concatenate([
        rng.choice(np.flatnonzero(labels == c), n, replace=False) for c, n in zip(classes, per_class)
    ])
    sample = np.sort(sample)
    return sample, np.setdiff1d(np.arange(len(labels)), sample)
