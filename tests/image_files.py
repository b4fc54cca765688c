"""Writes small image folders for the tests: every readable kind and every bad kind."""

from pathlib import Path

import numpy as np
from PIL import Image

GOOD_KINDS = ("rgb.png", "gray.jpg", "cmyk.jpg", "rgba.png", "deep16.png", "palette.gif",
              "nested/pic.webp", "pic.bmp", "rotated.jpg", "UPPER.JPEG")
BAD_KINDS = ("empty.jpg", "text.jpg", "truncated.png", "garbage.png")


def write_image(path, kind, value):
    """One image of `kind` whose pixels are all about `value` (0-255)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.full((20, 30, 3), value, np.uint8)
    if kind == "gray":
        Image.fromarray(rgb[..., 0], "L").save(path)
    elif kind == "cmyk":
        Image.fromarray(rgb).convert("CMYK").save(path)
    elif kind == "rgba":
        Image.fromarray(np.dstack([rgb, np.full((20, 30), 255, np.uint8)]), "RGBA").save(path)
    elif kind == "deep16":
        Image.fromarray(np.full((20, 30), value * 257, np.uint16)).save(path)
    elif kind == "palette":
        Image.fromarray(rgb).convert("P").save(path)
    elif kind == "rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(rgb).save(path, exif=exif)
    else:
        Image.fromarray(rgb).save(path)


def write_bad(path, kind):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty.jpg":
        path.write_bytes(b"")
    elif kind == "text.jpg":
        path.write_text("this is not an image")
    elif kind == "truncated.png":
        write_image(path, "rgb", 100)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(np.random.default_rng(0).bytes(500))


def kind_of(name):
    stem = Path(name).name.split(".")[0].lower()
    return {"upper": "rgb", "pic": "rgb"}.get(stem, stem)


def write_class_folder(root, classes, per_class=0, value_of=None):
    """`per_class` plain PNGs per class (`c/img_000.png`, ...); returns the paths."""
    paths = []
    for label, name in enumerate(classes):
        for i in range(per_class):
            value = value_of(label) if value_of else 40 + 80 * label
            path = Path(root) / name / f"img_{i:03d}.png"
            write_image(path, "rgb", value)
            paths.append(path)
    return paths
