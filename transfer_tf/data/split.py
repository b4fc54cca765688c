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
