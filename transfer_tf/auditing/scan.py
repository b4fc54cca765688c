"""What is in an image folder, each file read once: its bytes' hash, what Pillow says of it, its pixels.

Two layouts are understood: one sub-folder per class (`cat/1.jpg`), or a
folder already split into `train/`, `validation/` (or `val/`) and `test/`,
each holding the class folders. In the first, a file's split is the one
`data.from_directory` would give it with the same fractions and seed, so the
audit sees the leakage a `transfer-tf train` run would have.
"""

import dataclasses
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from transfer_tf.data.directory import visible_dirs, visible_files
from transfer_tf.data.images import DECODE_ERRORS, is_image_file, resize_image, to_rgb
from transfer_tf.data.split import assign_split

SPLIT_FOLDERS = {"train": "train", "training": "train", "validation": "validation", "val": "validation",
                 "valid": "validation", "test": "test", "testing": "test"}
THUMBNAIL = 64
SIGNATURE = 16  # side of the grayscale signature near duplicates are compared by
CHUNK = 128  # files read ahead while the previous ones run through the base
_GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_GRAY_TOLERANCE = 3  # channel difference (0-255) below which an RGB image is gray


@dataclasses.dataclass
class ImageFile:
    """One file of the folder, as the audit read it.

    Attributes:
        path: `Path` of the file.
        relative: str. Its path inside the audited folder (POSIX).
        label: int or `None`. Its class folder's index (`None` outside one).
        split: str or `None`. `"train"`, `"validation"` or `"test"`.
        sha256: str or `None`. Hash of its bytes (`None` if unreadable).
        problem: str or `None`. Why it cannot be used, when it cannot.
        format: str or `None`. The format Pillow found in its bytes.
        width: int. height: int. grayscale: bool.
    """

    path: Path
    relative: str
    label: object
    split: object
    sha256: object = None
    problem: object = None
    format: object = None
    width: int = 0
    height: int = 0
    grayscale: bool = False


@dataclasses.dataclass
class Layout:
    """The classes and the files of a folder, before any is read.

    Attributes:
        class_names: list of str.
        files: list of `ImageFile` with an image extension, inside a class folder.
        ignored: list of `ImageFile` the loader leaves out, with the reason.
        pre_split: bool. Whether the folder was split into `train/` ... already.
    """

    class_names: list
    files: list
    ignored: list
    pre_split: bool


def scan_folder(root, *, validation_split=0.2, test_split=0.0, seed=0):
    """The layout of an image folder (see the module docstring); nothing is decoded yet.

    Raises:
        FileNotFoundError: if `root` is not a folder.
        ValueError: if it holds no class folder.
    """
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is a file, not a folder"
        raise FileNotFoundError(f"The image folder {root} {what}. Received: path={str(root)!r}")
    top = visible_dirs(root)
    pre_split = bool(top) and all(d.name.lower() in SPLIT_FOLDERS for d in top)
    groups = [(SPLIT_FOLDERS[d.name.lower()], d) for d in top] if pre_split else [(None, root)]
    class_names = sorted({c.name for _, folder in groups for c in visible_dirs(folder)})
    if not class_names:
        raise ValueError(f"{root} holds no class folders: put the images of each class in a sub-folder "
                         f"named after it (e.g. {root}/cat/1.jpg), or in train/CLASS/, validation/CLASS/.")
    files, ignored = [], []
    for split, folder in groups:
        for path in visible_files(folder):
            relative = path.relative_to(root).as_posix()
            inside = path.relative_to(folder).parts
            label = class_names.index(inside[0]) if len(inside) > 1 else None
            file_split = split
            if not pre_split and label is not None:  # the key `from_directory` splits by
                file_split = assign_split(Path(*inside[1:]).as_posix(), seed=seed,
                                          validation_split=validation_split, test_split=test_split)
            record = ImageFile(path, relative, label, file_split)
            if label is None:
                record.problem = "outside any class folder: the loader ignores it"
                ignored.append(record)
            elif not is_image_file(path):
                record.problem = f"extension {path.suffix or '(none)'!r} is not an image one: the loader ignores it"
                ignored.append(record)
            else:
                files.append(record)
    return Layout(class_names, files, ignored, pre_split)


def read_files(files, image_size, resize, *, chunk=CHUNK):
    """Reads every file once, in threads, yielding chunks of `(records, pixels, thumbnails, signatures)`.

    Each chunk's `pixels` is uint8 `(k, height, width, 3)` of the readable
    files of the chunk, in order, `thumbnails` their small copies for the
    audit page and `signatures` their `signature`s; unreadable files get
    `problem` set and no pixels. The next chunk is read while the caller
    works on this one.
    """
    workers = min(8, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [pool.submit(read_one, f, image_size, resize) for f in files[:chunk]]
        for start in range(0, len(files), chunk):
            results = [future.result() for future in pending]
            pending = [pool.submit(read_one, f, image_size, resize) for f in files[start + chunk:start + 2 * chunk]]
            readable = [(record, *result) for record, result in zip(files[start:start + chunk], results)
                        if result[0] is not None]
            yield ([r[0] for r in readable],
                   np.stack([r[1] for r in readable]) if readable else np.zeros((0, *image_size, 3), np.uint8),
                   [r[2] for r in readable], [r[3] for r in readable])


def read_one(record, image_size, resize):
    """Hashes and decodes one file, filling in `record`.

    Returns:
        `(pixels, thumbnail, signature)`, or `(None, None, None)` for a file
        that cannot be used.
    """
    try:
        data = record.path.read_bytes()
    except OSError as error:
        record.problem = f"cannot be read ({type(error).__name__}: {error})"
        return None, None, None
    record.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        record.problem = "empty file"
        return None, None, None
    try:
        with Image.open(io.BytesIO(data)) as image:
            record.format = image.format
            mode = image.mode
            image.load()
            record.width, record.height = image.size
            if not image.width or not image.height:
                raise ValueError("image has no pixels")
            rgb = to_rgb(ImageOps.exif_transpose(image))
    except DECODE_ERRORS as error:
        record.problem = f"not a decodable image ({type(error).__name__}: {error})"
        return None, None, None
    small = rgb.copy()
    small.thumbnail((THUMBNAIL, THUMBNAIL))
    small = np.asarray(small, dtype=np.uint8)
    channel_gap = np.abs(small.astype(int) - small.mean(axis=2, keepdims=True)).max(initial=0)
    record.grayscale = mode in _GRAYSCALE_MODES or channel_gap <= _GRAY_TOLERANCE
    return resize_image(rgb, image_size, resize), small, signature(rgb)


def signature(image):
    """A 16 x 16 grayscale copy of a Pillow image, zero-mean and of length 1 (all zeros if flat).

    Two files of one photo (re-encoded, resized, brightened) correlate at
    0.998 or more by it, distinct photos of one set below 0.98 (sign-language
    digits); see `duplicates`.
    """
    gray = np.asarray(image.convert("L").resize((SIGNATURE, SIGNATURE), Image.BILINEAR), np.float32).ravel()
    gray -= gray.mean()
    norm = np.linalg.norm(gray)
    return gray / norm if norm > 1e-3 else np.zeros_like(gray)
