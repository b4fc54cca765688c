"""Folders of images: one sub-folder per class (`from_directory`), or any folder (`unlabelled_images`)."""

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from transfer_tf.core.checks import check_choice, normalise_image_size
from transfer_tf.core.choices import RESIZE_POLICIES
from transfer_tf.data.images import IMAGE_EXTENSIONS, check_image, is_image_file
from transfer_tf.data.pipeline import decoded_images
from transfer_tf.data.splits import file_list, skipped_report, splits_from_files, validate_split_args


def from_directory(
    path,
    *,
    image_size,
    validation_split=0.2,
    test_split=0.0,
    seed=0,
    batch_size=32,
    augment="none",
    resize="stretch",
    cache=False,
    exclude=None,
    verbose=True,
):
    """Loads labelled images from one sub-folder per class.

    Every image is decoded once before anything else, so files that cannot be
    read (corrupt, truncated, empty, not an image at all) are found up front,
    left out, and reported; training never stops halfway on a bad file.
    Files without an image extension and hidden files are ignored. Images of
    any mode (grayscale, RGBA, CMYK, 16-bit, palette) become RGB, EXIF
    orientation is applied, and every image is resized to `image_size` by
    the `resize` policy.

    The split is stratified and stable: each image's split follows from a
    hash of its path inside its class folder and the seed, so every class is
    split by the same fractions and adding images never moves existing ones
    to another split.

    Args:
        path: str or path. A folder holding one sub-folder per class; the
            sub-folder names, sorted, are the class names. Images may sit in
            nested folders inside a class folder.
        image_size: int or tuple `(height, width)`. Size the images are
            resized to; pass the classifier's `image_size`.
        validation_split: float. Fraction of each class for validation.
            Defaults to `0.2`.
        test_split: float. Fraction of each class held out for testing.
            Defaults to `0.0`.
        seed: int. Seed of the split, the shuffling and the augmentation.
            Defaults to `0`.
        batch_size: int. Defaults to `32`.
        augment: str. Augmentation preset for the training split: `"none"`,
            `"light"` or `"strong"` (see `augmentation`). Defaults to
            `"none"`.
        resize: str. `"stretch"`, `"crop"` or `"pad"` (see
            `RESIZE_POLICIES`). Defaults to `"stretch"`.
        cache: bool or path. `True` keeps decoded images in memory after the
            first epoch; a folder keeps them in files there. Defaults to
            `False`: images are decoded as needed.
        exclude: iterable of str, or `None`. Files to leave out, as paths
            relative to `path` (`"cat/1.jpg"`), e.g. from
            `exclusions.read_exclusions("audit.csv")`; they are left out
            before the split, so the other files keep their splits, and
            `source["excluded"]` records them. Defaults to `None`.
        verbose: bool. Whether to show progress while checking the files and
            print the class counts. Defaults to `True`.

    Returns:
        `ImageSplits`.

    Raises:
        FileNotFoundError: if `path` does not exist or is not a folder.
        ValueError: if there are no class folders, only one class, a class
            without readable images, or an argument out of range.

    Examples:

        >>> splits = from_directory("photos/", image_size=224)   # doctest: +SKIP
        >>> fine_tune(clf, splits.train, splits.validation)      # doctest: +SKIP
    """
    image_size = normalise_image_size(image_size)
    validate_split_args(
        validation_split=validation_split, test_split=test_split,
        batch_size=batch_size, augment=augment, resize=resize,
    )
    root = Path(path)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is a file, not a folder"
        raise FileNotFoundError(
            f"The image folder {root} {what}. Pass a folder with one sub-folder of "
            f"images per class. Received: path={str(path)!r}"
        )
    class_names = [d.name for d in visible_dirs(root)]
    walked = {name: _files_by_kind(root / name) for name in class_names}
    candidates = {name: images for name, (images, _) in walked.items()}
    excluded = _exclude(root, candidates, exclude)
    _check_classes(root, candidates)
    skipped, good = _check_files(root, candidates, verbose)
    empty = [name for name in class_names if not good[name]]
    if empty:
        raise ValueError(
            f"Class folder(s) {empty} in {root} hold no readable images. Add images "
            "or remove the folder.\n" + "\n".join(skipped_report(skipped))
        )
    items = [
        (file, label, file.relative_to(root / name).as_posix())
        for label, name in enumerate(class_names)
        for file in good[name]
    ]
    splits = splits_from_files(
        items, class_names, image_size=image_size, resize=resize,
        validation_split=validation_split, test_split=test_split, seed=seed,
        batch_size=batch_size, augment=augment, cache=cache, skipped=skipped,
        source={"kind": "directory", "path": str(root.resolve()), **excluded},
    )
    if verbose:
        print(f"Found {len(items)} images in {len(class_names)} classes in {root}.")
        loose = [path for path in sorted(root.iterdir()) if path.is_file() and not path.name.startswith(".")]
        for line in ignored_report(loose, [path for _, others in walked.values() for path in others]):
            print(line)
        if exclude is not None:
            print(f"Left out {len(excluded['excluded'])} file(s) named by the exclusion list "
                  f"({excluded['exclusions_not_found']} of its paths are not in {root}).")
        print(splits.summary())
    return splits


def ignored_report(loose, others, *, classes=True):
    """Lines naming the files a loader passes over: `loose` ones beside the class folders, `others` not
    images by their extension. `classes=False`: a folder of unlabelled images, where there are no loose ones.
    """
    ignored = [(path, "outside any class folder") for path in loose]
    ignored += [(path, f"extension {path.suffix.lower() or '(none)'!r}") for path in others]
    rule = "images go in a class folder and end in" if classes else "images end in"
    return file_list(f"Ignored {len(ignored)} file(s) that are not read ({rule} {', '.join(IMAGE_EXTENSIONS)}):",
                     ignored)


def list_images(paths):
    """Image files named by paths: files as given, folders searched recursively."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(_image_files(path))
        else:
            files.append(path)
    return files


def _image_files(folder):
    return _files_by_kind(folder)[0]


def _files_by_kind(folder):
    """`(image files, other files)` under `folder`, by extension, hidden ones left out."""
    images, others = [], []
    for path in visible_files(folder):
        (images if is_image_file(path.name) else others).append(path)
    return images, others


def visible_dirs(folder):
    """The folders directly in `folder` whose names do not start with a dot, sorted by name."""
    return sorted((d for d in Path(folder).iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.name)


def visible_files(folder):
    """Every file under `folder` whose name and folders do not start with a dot, sorted, links followed."""
    for directory, subdirs, names in os.walk(folder, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        yield from (Path(directory) / name for name in sorted(names) if not name.startswith("."))


def _exclude(root, candidates, exclude):
    """Drops the excluded files from `candidates` in place; returns what `source` records of them."""
    if exclude is None:
        return {}
    if isinstance(exclude, (str, os.PathLike)):
        raise TypeError("exclude takes the paths to leave out (e.g. read_exclusions('audit.csv')), not a file. "
                        f"Received: exclude={str(exclude)!r}")
    wanted = {str(p).replace("\\", "/") for p in exclude}
    left_out = []
    for name, files in candidates.items():
        relative = [(f, f.relative_to(root).as_posix()) for f in files]
        left_out += [r for _, r in relative if r in wanted]
        candidates[name] = [f for f, r in relative if r not in wanted]
    return {"excluded": sorted(left_out), "exclusions_not_found": len(wanted) - len(left_out)}


def _check_classes(root, candidates):
    if not candidates:
        raise ValueError(
            f"{root} has no class sub-folders. Put the images of each class in a "
            f"sub-folder named after the class, e.g. {root}/cat/1.jpg."
        )
    if len(candidates) == 1:
        raise ValueError(
            f"{root} has a single class folder {list(candidates)}; a classifier needs "
            "at least two classes."
        )
    if not any(candidates.values()):
        raise ValueError(
            f"No image files in the class folders of {root}. Supported extensions: "
            f"{', '.join(IMAGE_EXTENSIONS)}."
        )
    empty = [name for name, files in candidates.items() if not files]
    if empty:
        raise ValueError(
            f"Class folder(s) {empty} in {root} hold no image files "
            f"({', '.join(IMAGE_EXTENSIONS)}). Add images or remove the folder."
        )


def _check_files(root, candidates, verbose):
    files = [f for names in candidates.values() for f in names]
    progress = keras.utils.Progbar(len(files), unit_name="file") if verbose else None
    if verbose:
        print(f"Checking {len(files)} image files in {root} ...")
    reasons = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        for i, reason in enumerate(pool.map(check_image, files), 1):
            reasons.append(reason)
            if progress is not None and (i % 100 == 0 or i == len(files)):
                progress.update(i)
    bad = {f: r for f, r in zip(files, reasons) if r is not None}
    good = {name: [f for f in names if f not in bad] for name, names in candidates.items()}
    return list(bad.items()), good


@dataclasses.dataclass
class UnlabelledImages:
    """Every readable image under a folder, decoded at one size.

    Attributes:
        images: uint8 array `(n, height, width, 3)`.
        paths: list of `Path`, one per image, in the same order.
        skipped: list of `(path, reason)`: files that could not be read.
    """

    images: np.ndarray
    paths: list
    skipped: list


def unlabelled_images(path, *, image_size, resize="stretch", verbose=True):
    """Reads every image under a folder, whatever its sub-folders, ignoring any labels.

    For the images of a target domain, or the unlabelled pool of a
    pretraining run. Unreadable files are skipped and reported.

    Args:
        path: str or path. A folder; images are found recursively (hidden
            files and folders are ignored).
        image_size: int or tuple. Size the images are resized to.
        resize: str. `"stretch"`, `"crop"` or `"pad"`. Defaults to
            `"stretch"`.
        verbose: bool. Show progress and the skip report. Defaults to `True`.

    Returns:
        `UnlabelledImages`.

    Raises:
        FileNotFoundError: if `path` is not a folder.
        ValueError: if it holds no readable image.
    """
    size = normalise_image_size(image_size)
    check_choice("resize", resize, RESIZE_POLICIES)
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"No image folder at {root}. Received: path={str(path)!r}")
    image_files, others = _files_by_kind(root)
    skipped, good = _check_files(root, {"": image_files}, verbose)
    files = good[""]
    if not files:
        raise ValueError(f"No readable image files in {root} ({', '.join(IMAGE_EXTENSIONS)}).\n"
                         + "\n".join(skipped_report(skipped)))
    images = decoded_images([str(f) for f in files], size, resize, None, None)
    if verbose:
        print(f"Read {len(files)} images from {root}.")
        for line in ignored_report([], others, classes=False) + skipped_report(skipped):
            print(line)
    return UnlabelledImages(images, files, skipped)
