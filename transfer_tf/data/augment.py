"""Augmentation presets: Keras preprocessing layers applied to training batches."""

import keras

from transfer_tf.core.checks import check_choice
from transfer_tf.core.choices import AUGMENTATIONS


def augmentation(preset, seed=None):
    """Returns the augmentation layers of a preset, or `None` for `"none"`.

    - `"light"`: horizontal flip, rotation up to ±18°, zoom ±10 %.
    - `"strong"`: horizontal flip, rotation up to ±36°, zoom ±20 %, contrast
      ±20 %, translation ±10 %.

    Flips suit photos of objects; for data where left and right differ
    (digits, text, hand signs), use `"none"` or build your own layers.

    Args:
        preset: str. `"none"`, `"light"` or `"strong"`.
        seed: int or `None`. Seed of the random transformations. Defaults to
            `None`.

    Returns:
        A `keras.Sequential` of preprocessing layers that maps float images
        in [0, 255] to float images in [0, 255], or `None`.

    Examples:

        >>> augmentation("light").layers[0].name
        'random_flip'
    """
    check_choice("augment", preset, AUGMENTATIONS)
    if preset == "none":
        return None
    if preset == "light":
        layers = [
            keras.layers.RandomFlip("horizontal", seed=seed, name="random_flip"),
            keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
        ]
    else:
        layers = [
            keras.layers.RandomFlip("horizontal", seed=seed, name="random_flip"),
            keras.layers.RandomRotation(0.1, fill_mode="reflect", seed=seed),
            keras.layers.RandomZoom(0.2, fill_mode="reflect", seed=seed),
            keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
        ]
    return keras.Sequential(layers, name=f"augment_{preset}")
