"""tf.data pipelines: parallel decode, optional cache, batch, augment, prefetch.

Images are decoded as they are needed, never all held in memory, unless a
cache is asked for (`cache=True` keeps the decoded images in memory, a path
keeps them in files there).
"""

import contextlib
import dataclasses
import hashlib
import os

import numpy as np
import tensorflow as tf

from transfer_tf.data.images import read_image

SHUFFLE_BUFFER_AFTER_CACHE = 2048
RECIPE_ATTRIBUTE = "_transfer_tf_recipe"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a dataset was built, so its images can be swapped for cached features.

    A dataset built by transfer_tf carries one (see `recipe_of`). Its batches
    are the images `images_for(order)` of a shuffled (or not) index order;
    `order()` makes that index order again, batch for batch and epoch for
    epoch, because `tf.data`'s shuffle order depends only on the seed and
    the number of elements, not on what the elements are.

    Attributes:
        count: int. Number of images.
        labels: array. Labels in natural (unshuffled) order.
        images_for: callable. Index array to a batch of model-size images.
        shuffle_buffer: int or `None`. `None` for an unshuffled dataset.
        seeds: tuple. The `(global, operation)` seed pair of the shuffle, as
            `tf.random` resolved it when the dataset was built.
        batch_size: int.
        augmented: bool. Whether random augmentation changes the images.
        identity: callable. Returns text identifying the images and labels.
    """

    count: int
    labels: np.ndarray
    images_for: object
    shuffle_buffer: object
    seeds: tuple
    batch_size: int
    augmented: bool
    identity: object

    def order(self):
        """A batched dataset of `(indices, labels)` in the dataset's own order."""
        dataset = tf.data.Dataset.from_tensor_slices((np.arange(self.count), self.labels))
        if self.shuffle_buffer:
            with _shuffle_seeds(self.seeds):
                dataset = dataset.shuffle(self.shuffle_buffer, reshuffle_each_iteration=True)
        return dataset.batch(self.batch_size)

    def fingerprint(self):
        """sha256 of the identity text: changes when any image or label does."""
        return hashlib.sha256(self.identity().encode()).hexdigest()


def shuffle_seeds(seed):
    """The seed pair a `shuffle(seed=seed)` made now will use.

    It depends on the global seed at that moment (`keras.utils.set_random_seed`
    changes it), so a recipe keeps the pair rather than `seed`.
    """
    from tensorflow.python.framework import random_seed

    return tuple(random_seed.get_seed(seed))


@contextlib.contextmanager
def _shuffle_seeds(seeds):
    """Makes a `shuffle` built inside use `seeds`, whatever the global seed is now."""
    from tensorflow.python.framework import random_seed

    original = random_seed.get_seed
    random_seed.get_seed = lambda op_seed: seeds
    try:
        yield
    finally:
        random_seed.get_seed = original


def recipe_of(dataset):
    """The `Recipe` of a dataset transfer_tf built, or `None`."""
    return getattr(dataset, RECIPE_ATTRIBUTE, None)


def with_recipe(dataset, recipe):
    setattr(dataset, RECIPE_ATTRIBUTE, recipe)
    return dataset


def array_recipe(
    images, labels, *, shuffle_buffer, seed, batch_size, augmented, convert=None, conversion="",
):
    """The `Recipe` of a dataset of in-memory images.

    `convert` maps a batch of them to model input; `conversion` names what it
    does (image size, resize policy) for the data's fingerprint.
    """

    def images_for(index):
        batch = images[np.asarray(index)]
        return batch if convert is None else np.asarray(convert(batch))

    def identity():
        digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
        digest.update(np.ascontiguousarray(labels).tobytes())
        return f"arrays {images.shape} {images.dtype} {digest.hexdigest()} {conversion}"

    return Recipe(len(images), np.asarray(labels), images_for, shuffle_buffer, shuffle_seeds(seed),
                  batch_size, augmented, identity)


def file_dataset(
    paths, labels, *, image_size, resize, batch_size, shuffle, seed, augmentation, cache
):
    """A batched dataset of `(uint8 or float32 images, labels)` from files."""
    height, width = image_size

    def decode(path):
        return read_image(path.decode("utf-8"), (height, width), resize)

    def load(path, label):
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape((height, width, 3))
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices(([str(p) for p in paths], labels))
    if shuffle and not cache:
        # Shuffling names is free; decoded images are shuffled only when cached.
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = _finish(dataset, len(paths), batch_size, shuffle, seed, augmentation, cache)

    def images_for(index):
        return np.stack([read_image(paths[i], (height, width), resize) for i in np.asarray(index)])

    def identity():
        stats = [os.stat(p) for p in paths]
        files = [f"{p}|{s.st_size}|{s.st_mtime_ns}|{l}" for p, s, l in zip(paths, stats, labels)]
        return f"files {height}x{width} {resize}\n" + "\n".join(files)

    return with_recipe(dataset, Recipe(
        len(paths), np.asarray(labels), images_for, _shuffle_buffer(len(paths), shuffle, cache),
        shuffle_seeds(seed), batch_size, augmentation is not None, identity))


def array_dataset(
    images, labels, *, image_size, resize, batch_size, shuffle, seed, augmentation, cache=False
):
    """A batched dataset from in-memory arrays, converted to RGB at `image_size`."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle and not cache:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = tensor_dataset(
        dataset, len(images), image_size=image_size, resize=resize, batch_size=batch_size,
        shuffle=shuffle, seed=seed, augmentation=augmentation, cache=cache,
    )

    @tf.function(reduce_retracing=True)
    def convert(batch):
        return tf.map_fn(
            lambda image: tf.cast(resize_tensor(rgb_tensor(image), image_size, resize), tf.float32),
            batch, fn_output_signature=tf.float32)

    return with_recipe(dataset, array_recipe(
        images, labels, shuffle_buffer=_shuffle_buffer(len(images), shuffle, cache), seed=seed,
        batch_size=batch_size, augmented=augmentation is not None, convert=convert,
        conversion=f"{tuple(image_size)} {resize}",
    ))


def tensor_dataset(
    dataset, count, *, image_size, resize, batch_size, shuffle, seed, augmentation, cache=False
):
    """Batches an unbatched dataset of `(image, label)` tensors of any size and channels."""

    def to_model_input(image, label):
        return resize_tensor(rgb_tensor(image), image_size, resize), label

    dataset = dataset.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(dataset, count, batch_size, shuffle, seed, augmentation, cache)


def rgb_tensor(image):
    """An image tensor (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) as (H, W, 3)."""
    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        return tf.image.grayscale_to_rgb(image)
    if image.shape[-1] == 4:
        return image[..., :3]
    return image


def resize_tensor(image, size, resize):
    """Resizes an (H, W, 3) tensor by a resize policy; float32 in [0, 255] unless unchanged."""
    if tuple(image.shape[:2]) == tuple(size):
        return image
    image = tf.cast(image, tf.float32)
    if resize == "pad":
        image = tf.image.resize_with_pad(image, *size, antialias=True)
    elif resize == "crop":
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.reduce_max(tf.constant(size, tf.float32) / shape)
        scaled = tf.cast(tf.math.ceil(shape * scale), tf.int32)
        image = tf.image.resize(image, scaled, antialias=True)
        image = tf.image.resize_with_crop_or_pad(image, *size)
    else:
        image = tf.image.resize(image, size, antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)
    image.set_shape((*size, 3))
    return image


def _shuffle_buffer(count, shuffle, cache):
    """The shuffle buffer `_finish` and the loaders use, or `None` when unshuffled."""
    if not shuffle:
        return None
    return min(count, SHUFFLE_BUFFER_AFTER_CACHE) if cache else count


def _finish(dataset, count, batch_size, shuffle, seed, augmentation, cache):
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
        if shuffle:
            dataset = dataset.shuffle(
                min(count, SHUFFLE_BUFFER_AFTER_CACHE), seed=seed, reshuffle_each_iteration=True
            )
    dataset = dataset.batch(batch_size)
    if augmentation is not None:
        dataset = dataset.map(
            lambda x, y: (augmentation(tf.cast(x, tf.float32), training=True), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
