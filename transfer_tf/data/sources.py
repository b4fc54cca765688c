"""Labelled images from arrays and TensorFlow Datasets."""


import numpy as np
import tensorflow as tf

from transfer_tf.core.checks import normalise_image_size
from transfer_tf.core.text import first_line
from transfer_tf.data.augment import augmentation
from transfer_tf.data.pipeline import tensor_dataset
from transfer_tf.data.split import SPLITS
from transfer_tf.data.splits import (
    ImageSplits,
    split_cache,
    splits_from_arrays,
    validate_split_args,
)


def from_arrays(
    images,
    labels,
    class_names=None,
    *,
    image_size=None,
    validation_split=0.0,
    test_split=0.0,
    seed=0,
    batch_size=32,
    augment="none",
    resize="stretch",
):
    """Splits and batches images held in arrays.

    An image's split follows from a hash of its index and the seed, so
    appending images does not move the earlier ones.

    Args:
        images: array `(n, height, width)`, `(n, height, width, 1)`,
            `(n, height, width, 3)` or `(..., 4)`; raw pixels in [0, 255].
        labels: array `(n,)` of class indices, or `(n, k)` multi-hot rows.
        class_names: list of str or `None`. Defaults to `None`, meaning
            `"0"`, `"1"`, ... for the classes found.
        image_size: int, tuple or `None`. Size to resize to. Defaults to
            `None`, meaning the arrays' own size.
        validation_split: float. Defaults to `0.0`.
        test_split: float. Defaults to `0.0`.
        seed: int. Defaults to `0`.
        batch_size: int. Defaults to `32`.
        augment: str. Preset for the training split. Defaults to `"none"`.
        resize: str. Resize policy (see `RESIZE_POLICIES`). Defaults to
            `"stretch"`.

    Returns:
        `ImageSplits`.

    Raises:
        ValueError: for arrays of the wrong shape, a label/image count
            mismatch, or labels outside `class_names`.

    Examples:

        >>> splits = from_arrays(np.zeros((10, 8, 8)), np.arange(10) % 2,
        ...                      ["even", "odd"], image_size=32)
        >>> splits.counts["train"]
        [5, 5]
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype == np.float64:
        images = images.astype(np.float32)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise ValueError(
            "images must have shape (n, height, width) or (n, height, width, 1|3|4). "
            f"Received: images.shape={images.shape}"
        )
    if len(labels) != len(images):
        raise ValueError(f"Got {len(images)} images but {len(labels)} labels.")
    if labels.ndim == 1:
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be class indices (ints). Received: dtype={labels.dtype}")
        labels = labels.astype(np.int32)
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        if len(labels) and labels.min() < 0:
            raise ValueError(f"labels must be >= 0. Received: min label {labels.min()}")
    elif labels.ndim == 2:
        labels = labels.astype(np.float32)
        num_classes = labels.shape[1]
    else:
        raise ValueError(f"labels must be (n,) or (n, k). Received: labels.shape={labels.shape}")
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if num_classes > len(class_names):
        raise ValueError(
            f"labels use {num_classes} classes but {len(class_names)} class_names were given. "
            f"Received: class_names={list(class_names)}"
        )
    size = images.shape[1:3] if image_size is None else normalise_image_size(image_size)
    validate_split_args(
        validation_split=validation_split, test_split=test_split,
        batch_size=batch_size, augment=augment, resize=resize,
    )
    return splits_from_arrays(
        images, labels, class_names, image_size=tuple(int(v) for v in size), resize=resize,
        validation_split=validation_split, test_split=test_split, seed=seed,
        batch_size=batch_size, augment=augment, source={"kind": "arrays"},
    )


def from_tfds(
    name,
    *,
    image_size,
    split="train",
    data_dir=None,
    validation_split=0.2,
    test_split=0.0,
    seed=0,
    batch_size=32,
    augment="none",
    resize="stretch",
    cache=False,
    image_key="image",
    label_key="label",
):
    """Loads a prepared TensorFlow Datasets dataset and splits it.

    The data must already be prepared in `data_dir` (TFDS downloads it the
    first time on a machine with internet). Examples are split by a keyed
    hash of their position in `split`, which TFDS keeps fixed.

    Args:
        name: str. The TFDS name, e.g. `"tf_flowers"`.
        image_size: int or tuple. Size to resize to.
        split: str. The TFDS split to read, e.g. `"train"` or
            `"train[:50%]"`. Defaults to `"train"`.
        data_dir: str or `None`. Where TFDS keeps prepared data. Defaults to
            `None`, meaning TFDS's own default (`~/tensorflow_datasets`).
        validation_split: float. As in `from_directory`, and so are
            `test_split`, `seed`, `batch_size`, `augment`, `resize` and
            `cache`.
        image_key: str. The image feature. Defaults to `"image"`.
        label_key: str. The `ClassLabel` feature. Defaults to `"label"`.

    Returns:
        `ImageSplits`, class names taken from the dataset's info.

    Raises:
        ValueError: for an unknown dataset or feature.
        FileNotFoundError: if the dataset is not prepared in `data_dir`.
    """
    import tensorflow_datasets as tfds

    image_size = normalise_image_size(image_size)
    validate_split_args(
        validation_split=validation_split, test_split=test_split,
        batch_size=batch_size, augment=augment, resize=resize,
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises several kinds for a bad name
        raise ValueError(f"Unknown TFDS dataset {name!r}: {first_line(error)}") from None
    features = builder.info.features
    for key in (image_key, label_key):
        if key not in features:
            raise ValueError(
                f"{name} has no feature {key!r}; its features are {list(features)}."
            )
    class_names = list(features[label_key].names)
    key = [seed, 0]

    def split_of(index):
        bucket = tf.strings.to_hash_bucket_strong(tf.strings.as_string(index), 2**31 - 1, key)
        fraction = tf.cast(bucket, tf.float64) / (2**31 - 1)
        return tf.where(
            fraction < validation_split, 1, tf.where(fraction < validation_split + test_split, 2, 0)
        )

    try:
        labels_only = builder.as_dataset(
            split=split, shuffle_files=False,
            decoders={image_key: tfds.decode.SkipDecoding()},
        )
    except AssertionError:  # how tfds reports data that was never prepared
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in {builder.data_dir}. On a machine "
            f"with internet run `tfds build {name} --data_dir DIR` (or "
            f"tfds.builder({name!r}, data_dir=DIR).download_and_prepare()), copy DIR here "
            f"and pass data_dir=DIR. Received: data_dir={data_dir!r}"
        ) from None
    labels_only = labels_only.enumerate().map(lambda i, ex: (split_of(i), ex[label_key]))
    counts = {s: [0] * len(class_names) for s in SPLITS}
    for which, label in labels_only.as_numpy_iterator():
        counts[SPLITS[which]][label] += 1

    aug = augmentation(augment, seed)
    full = builder.as_dataset(split=split, shuffle_files=False).enumerate()

    def dataset(index, split_name):
        count = sum(counts[split_name])
        if not count:
            return None
        part = full.filter(lambda i, ex: split_of(i) == index).map(
            lambda i, ex: (ex[image_key], tf.cast(ex[label_key], tf.int32))
        )
        train = split_name == "train"
        return tensor_dataset(
            part, count, image_size=image_size, resize=resize, batch_size=batch_size,
            shuffle=train, seed=seed, augmentation=aug if train else None,
            cache=split_cache(cache, split_name),
        )

    return ImageSplits(
        class_names=class_names, train=dataset(0, "train"),
        validation=dataset(1, "validation"), test=dataset(2, "test"), counts=counts,
        image_size=tuple(image_size), batch_size=batch_size, augment=augment, skipped=[],
        files=None,
        source={"kind": "tfds", "name": name, "split": split, "data_dir": data_dir,
                "seed": seed, "validation_split": validation_split,
                "test_split": test_split, "resize": resize},
    )
