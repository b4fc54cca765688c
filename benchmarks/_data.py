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
