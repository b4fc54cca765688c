"""The data a trainer is given, as checked, batched datasets."""

import numpy as np
import tensorflow as tf

from transfer_tf.data.labels import balanced_class_weight, class_counts
from transfer_tf.data.pipeline import array_dataset, recipe_of

DEFAULT_BATCH_SIZE = 32


def training_data(classifier, train_data, validation_data, batch_size, seed):
    """`(train, validation)` datasets from datasets or arrays, checked against the classifier."""
    train = _as_dataset(train_data, classifier, batch_size, "train_data", shuffle=True, seed=seed)
    validation = None if validation_data is None else _as_dataset(
        validation_data, classifier, batch_size, "validation_data", shuffle=False, seed=seed)
    return train, validation


def evaluation_data(classifier, data, argument):
    """A dataset or a tuple of arrays as a batched dataset in its own order, checked against the classifier."""
    batch_size = None if isinstance(data, tf.data.Dataset) else DEFAULT_BATCH_SIZE
    return _as_dataset(data, classifier, batch_size, argument, shuffle=False, seed=0)


def batch_size_for(data, batch_size):
    """The batch size that applies to `data`: `batch_size` for arrays, `None` for a dataset (it
    comes batched)."""
    return None if isinstance(data, tf.data.Dataset) else batch_size


def check_batch_size_applies(batch_size, **inputs):
    """Refuses a `batch_size` that no input would use: every given input is a batched dataset.

    Raises:
        ValueError: naming the inputs, if `batch_size` is set and none of them is an array.
    """
    given = {name: data for name, data in inputs.items() if data is not None}
    if batch_size is None or not given:
        return
    if all(isinstance(data, tf.data.Dataset) for data in given.values()):
        raise ValueError(
            f"{', '.join(given)} {'is a' if len(given) == 1 else 'are'} batched tf.data.Dataset"
            f"{'' if len(given) == 1 else 's'}; batch_size applies to arrays only. Batch the datasets "
            f"as you build them (e.g. data.from_directory(..., batch_size=...)) and leave batch_size "
            f"unset. Received: batch_size={batch_size}")


def unlabelled_data(data, classifier, batch_size, seed):
    """Images (an array, a tuple `(images, labels)`, or a batched dataset of images or of
    `(images, labels)`; labels ignored) as a shuffled, batched dataset of `(images, labels)` whose
    labels are zeros, checked like training data."""
    if isinstance(data, tuple) and len(data) == 2:
        data = data[0]
    if isinstance(data, tf.data.Dataset):
        if not isinstance(data.element_spec, tuple):
            data = data.map(lambda x: (x, tf.zeros(tf.shape(x)[:1], tf.int32)))
        return training_data(classifier, data, None, None, seed)[0]
    images = np.asarray(data)
    return training_data(classifier, (images, np.zeros(len(images), np.int32)), None, batch_size, seed)[0]


def _as_dataset(data, classifier, batch_size, argument, *, shuffle, seed):
    if isinstance(data, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(
                f"{argument} is a tf.data.Dataset, which is already batched; "
                f"batch_size applies to arrays only. Received: batch_size={batch_size}"
            )
        dataset = data
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = (np.asarray(part) for part in data)
        if len(images) != len(labels):
            raise ValueError(
                f"{argument} has {len(images)} images but {len(labels)} labels."
            )
        _check_shape(images.shape[1:], classifier, argument, f"images.shape={images.shape}")
        dataset = array_dataset(
            images, labels, image_size=classifier.image_size, resize="stretch",
            batch_size=batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle, seed=seed, augmentation=None)
    else:
        raise ValueError(
            f"{argument} must be a batched tf.data.Dataset of (images, labels) or a "
            f"tuple (images, labels) of arrays. Received: {type(data).__name__}"
        )
    spec = dataset.element_spec
    shape = tuple(spec[0].shape) if isinstance(spec, tuple) else ()
    _check_shape(shape[1:] if len(shape) == 4 else None, classifier, argument, f"element_spec={spec}")
    return dataset


def _check_shape(shape, classifier, argument, received):
    expected = (*classifier.image_size, 3)
    fits = shape is not None and len(shape) == 3 and all(
        got is None or got == want for got, want in zip(shape, expected))
    if not fits:
        raise ValueError(
            f"{argument} must yield batches (images, labels) with images of shape "
            f"(batch, {expected[0]}, {expected[1]}, 3), raw pixels 0-255; resize "
            f"them to the classifier's image_size. Received: {received}"
        )


def class_weight_for(class_weight, train, classifier):
    """The class-weight dict `fit` takes: `"balanced"` counted from the training labels."""
    if class_weight != "balanced":
        return class_weight
    recipe = recipe_of(train)
    # The recipe's labels spare a pass over the data, which would also move its shuffle on.
    labels = recipe.labels if recipe is not None else np.concatenate(
        [np.asarray(y) for y in train.map(lambda x, y, *rest: y).as_numpy_iterator()])
    return balanced_class_weight(class_counts(labels, classifier.num_classes), classifier.class_names)
