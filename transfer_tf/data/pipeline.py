"""tf.data pipelines: shuffled indices, parallel decode, batch, augment, prefetch.

Every dataset transfer_tf builds from files or arrays runs over image
*indices*: `indices` (shuffled or not) -> load image `i` -> batch -> augment
-> prefetch. Images are decoded as they are needed, never all held in
memory, unless a cache is asked for (`cache=True` decodes them once into
memory, a folder into a `.npy` file there).

That shape is what lets the feature cache replace images by cached
features without changing the training: the dataset's `Recipe` holds its
index dataset, and a dataset derived from it (`recipe.batches`) shares the
same shuffle op and its seed generator. Iterated instead of the original, it
draws the very same order epoch after epoch, whatever the global seed is.
"""

import dataclasses
import hashlib
import os
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from transfer_tf.data.images import read_image

_RECIPES = weakref.WeakKeyDictionary()
_SHUFFLES = weakref.WeakKeyDictionary()  # dataset -> the shuffled index stage it draws its order from
SHUFFLE_BUFFER = 2048  # TFDS examples held for shuffling


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a dataset transfer_tf built maps to its images.

    Attributes:
        indices: unbatched `tf.data.Dataset` of `(index, label)` in the
            dataset's running order. It is the dataset's own (shuffled)
            index stage, so datasets derived from it run in the same order.
        count: int. Number of images.
        labels: array. Labels in natural (unshuffled) order.
        images_for: callable. Index array to a batch of model-size images.
        batch_size: int.
        augmented: bool. Whether random augmentation changes the images.
        identity: callable. Returns text identifying the images and labels.
        seeded: bool. Whether every process draws the same order: not
            shuffled, or shuffled with a seed.
    """

    indices: object
    count: int
    labels: np.ndarray
    images_for: object
    batch_size: int
    augmented: bool
    identity: object
    seeded: bool = True

    def batches(self, lookup, spec):
        """Batches `(lookup(indices), labels)` in the dataset's own order.

        Args:
            lookup: callable. Index array to a float32 array of `spec`'s shape.
            spec: `tf.TensorSpec` of one batch of what `lookup` returns.
        """

        def values(index):
            array = tf.numpy_function(
                lambda i: np.asarray(lookup(i), dtype=np.float32), [index], tf.float32, stateful=False)
            array.set_shape(spec.shape)
            return array

        derived = self.indices.batch(self.batch_size).map(
            lambda index, labels: (values(index), labels), num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)
        _SHUFFLES[derived] = self.indices
        return derived

    def fingerprint(self):
        """sha256 of the identity text: changes when any image or label does."""
        return hashlib.sha256(self.identity().encode()).hexdigest()


def recipe_of(dataset):
    """The `Recipe` of a dataset transfer_tf built, or `None` (any other, or one mapped since)."""
    try:
        return _RECIPES.get(dataset)
    except TypeError:  # not weak-referenceable: not a dataset of ours
        return None


def _with_recipe(dataset, recipe):
    _RECIPES[dataset] = recipe
    _SHUFFLES[dataset] = recipe.indices
    return dataset


def advance_shuffle(dataset, epochs):
    """Draws `epochs` orders from the dataset's shuffle without running it.

    A resumed run calls it so that its next epoch gets the order the
    uninterrupted run's next epoch had. Each new iterator over the shuffle
    stage draws one order; its elements are not read. Datasets transfer_tf
    did not build are left as they are.

    Returns:
        bool: whether the dataset's order could be advanced.
    """
    try:
        indices = _SHUFFLES.get(dataset)
    except TypeError:
        return False
    if indices is None:
        return False
    for _ in range(max(int(epochs), 0)):
        iter(indices)
    return True


def _indexed(count, labels, load, *, batch_size, shuffle, seed, augmentation, images_for, identity):
    """The pipeline every file and array dataset shares, and its recipe."""
    indices = tf.data.Dataset.from_tensor_slices((np.arange(count), labels))
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = indices.map(lambda i, y: (load(i), y), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size)
    if augmentation is not None:
        dataset = dataset.map(
            lambda x, y: (augmentation(tf.cast(x, tf.float32), training=True), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return _with_recipe(dataset, Recipe(
        indices, count, np.asarray(labels), images_for, batch_size, augmentation is not None, identity,
        seeded=not shuffle or seed is not None))


def file_dataset(
    paths, labels, *, image_size, resize, batch_size, shuffle, seed, augmentation, cache=False
):
    """A batched dataset of `(uint8 images, labels)` from image files.

    Args:
        cache: `False`, `True` (decode every image once, into memory) or a
            folder path (decode once into a `.npy` file there, named after
            the files' fingerprint and reused by later runs).
    """
    paths = [str(p) for p in paths]
    height, width = image_size

    def identity():
        stats = [os.stat(p) for p in paths]
        files = [f"{p}|{s.st_size}|{s.st_mtime_ns}|{l}" for p, s, l in zip(paths, stats, labels)]
        return f"files {height}x{width} {resize}\n" + "\n".join(files)

    if cache:
        images = decoded_images(paths, image_size, resize, None if cache is True else Path(cache), identity)
        return array_dataset(images, labels, image_size=image_size, resize=resize,
                             batch_size=batch_size, shuffle=shuffle, seed=seed,
                             augmentation=augmentation, identity=identity)

    def decode(index):
        return read_image(paths[int(index)], (height, width), resize)

    def load(index):
        image = tf.numpy_function(decode, [index], tf.uint8, stateful=False)
        image.set_shape((height, width, 3))
        return image

    def images_for(index):
        return np.stack([decode(i) for i in np.asarray(index)])

    return _indexed(len(paths), labels, load, batch_size=batch_size, shuffle=shuffle, seed=seed,
                    augmentation=augmentation, images_for=images_for, identity=identity)


def decoded_images(paths, image_size, resize, folder=None, identity=None):
    """Every image decoded once, in threads: in memory, or in a `.npy` file in `folder` (reused)."""
    path = None
    if folder is not None:
        digest = hashlib.sha256(identity().encode()).hexdigest()[:24]
        path = folder / f"images-{digest}.npy"
        if path.is_file():
            return np.load(path, mmap_mode="r")
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        images = np.stack(list(pool.map(lambda p: read_image(p, image_size, resize), paths)))
    if path is not None:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{path.name}.{uuid.uuid4().hex}.partial"  # unique: processes may share the folder
        with open(partial, "wb") as file:
            np.save(file, images)
        os.replace(partial, path)
    return images


def array_dataset(
    images, labels, *, image_size, resize, batch_size, shuffle, seed, augmentation, identity=None,
):
    """A batched dataset from in-memory arrays, converted to RGB at `image_size`.

    Args:
        identity: callable or `None`. Text identifying the images (for the
            feature cache's key). Defaults to a hash of the arrays.
    """
    size = tuple(image_size)
    same = tuple(images.shape[1:3]) == size and images.ndim == 4 and images.shape[-1] == 3
    stored = tf.constant(images)

    def load(index):
        image = tf.gather(stored, index)
        return image if same else resize_tensor(rgb_tensor(image), size, resize)

    @tf.function(reduce_retracing=True)
    def convert(batch):
        return tf.map_fn(
            lambda image: tf.cast(resize_tensor(rgb_tensor(image), size, resize), tf.float32),
            batch, fn_output_signature=tf.float32)

    def images_for(index):
        batch = np.asarray(images[np.asarray(index)])
        return batch if same else np.asarray(convert(batch))

    def array_identity():
        digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
        digest.update(np.ascontiguousarray(labels).tobytes())
        return f"arrays {images.shape} {images.dtype} {digest.hexdigest()} {size} {resize}"

    return _indexed(len(images), labels, load, batch_size=batch_size, shuffle=shuffle, seed=seed,
                    augmentation=augmentation, images_for=images_for,
                    identity=identity or array_identity)


def tensor_dataset(dataset, count, *, image_size, resize, batch_size, shuffle, seed, augmentation,
                   cache=False):
    """Batches an unbatched dataset of `(image, label)` tensors of any size and channels.

    It has no recipe: its images cannot be looked up by index.

    Args:
        cache: `False`, `True` (keep decoded images in memory after the
            first epoch) or a file prefix (keep them in files there).
    """

    def to_model_input(image, label):
        return resize_tensor(rgb_tensor(image), image_size, resize), label

    def shuffled(dataset):
        if not shuffle:
            return dataset
        return dataset.shuffle(min(count, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)

    if cache:  # shuffle the decoded images each epoch, after the first
        dataset = dataset.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = shuffled(dataset.cache("" if cache is True else str(cache)))
    else:
        dataset = shuffled(dataset).map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size)
    if augmentation is not None:
        dataset = dataset.map(
            lambda x, y: (augmentation(tf.cast(x, tf.float32), training=True), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


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
