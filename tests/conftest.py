import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def random_images(count, size, seed=0):
    """Raw-pixel images in [0, 255], float32, shape (count, size, size, 3)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (count, size, size, 3)).astype("float32")


def separable_data(count, size, num_classes, seed=0):
    """Images whose class sets their brightness, so a head can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_classes
    base = (labels[:, None, None, None] + 0.5) * (255.0 / num_classes)
    noise = rng.normal(0, 10, (count, size, size, 3))
    return np.clip(base + noise, 0, 255).astype("float32"), labels


def weight_groups(keras_file):
    """The top-level groups of a `.keras` file's weights (`layers`, and `optimizer` if it was saved)."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(keras_file) as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(io.BytesIO(raw.read()), "r") as weights:
            return set(weights)
