"""tf.data pipelines: parallel decode, optional cache, batch, augment, prefetch.

Images are decoded as they are needed, never all held in memory, unless a
cache is asked for (`cache=True` keeps the decoded images in memory, a path
keeps them in files there).
"""

import tensorflow as tf

from transfer_tf.data.images import read_image

SHUFFLE_BUFFER_AFTER_CACHE = 2048


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
    return _finish(dataset, len(paths), batch_size, shuffle, seed, augmentation, cache)


def array_dataset(
    images, labels, *, image_size, resize, batch_size, shuffle, seed, augmentation, cache=False
):
    """A batched dataset from in-memory arrays, converted to RGB at `image_size`."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle and not cache:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return tensor_dataset(
        dataset, len(images), image_size=image_size, resize=resize, batch_size=batch_size,
        shuffle=shuffle, seed=seed, augmentation=augmentation, cache=cache,
    )


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
