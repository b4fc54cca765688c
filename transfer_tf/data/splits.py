"""`ImageSplits`: the train/validation/test datasets of one labelled source."""

import dataclasses
from pathlib import Path

import numpy as np

from transfer_tf.core.checks import check_choice, check_int
from transfer_tf.core.choices import AUGMENTATIONS, RESIZE_POLICIES
from transfer_tf.data.augment import augmentation
from transfer_tf.data.labels import balanced_class_weight, class_counts
from transfer_tf.data.pipeline import array_dataset, file_dataset
from transfer_tf.data.split import SPLITS, assign_split, validate_fractions

SKIPPED_SHOWN = 5


@dataclasses.dataclass
class ImageSplits:
    """Batched `tf.data` datasets of `(images, labels)` and what they hold.

    Images are raw RGB pixels in [0, 255] of `image_size`; labels are class
    indices (int32). Only `train` is shuffled and augmented.

    Attributes:
        class_names: list of str. Label `i` is `class_names[i]`.
        train: `tf.data.Dataset`.
        validation: `tf.data.Dataset` or `None` when the split is empty.
        test: `tf.data.Dataset` or `None` when the split is empty.
        counts: dict. Split name to a list of image counts per class.
        image_size: tuple `(height, width)`.
        batch_size: int.
        augment: str. The augmentation preset of `train`.
        skipped: list of `(path, reason)`. Files left out as unreadable.
        files: dict or `None`. For file sources, split name to a list of
            `(path, label)`, in dataset order (`train` is shuffled anew).
        source: dict. Where the images came from and the split settings.
    """

    class_names: list
    train: object
    validation: object
    test: object
    counts: dict
    image_size: tuple
    batch_size: int
    augment: str
    skipped: list
    files: object
    source: dict

    def class_weight(self):
        """Balanced class weights from the training counts: `n / (k * count)`.

        Returns:
            dict of class index to float, for `fine_tune(class_weight=...)`.

        Raises:
            ValueError: if a class has no training images.
        """
        return balanced_class_weight(self.counts["train"], self.class_names)

    def summary(self):
        """A readable table of class counts per split, and the skipped files."""
        splits = [s for s in SPLITS if sum(self.counts[s])]
        width = max(len(n) for n in [*self.class_names, "class", "total"])
        lines = ["  ".join([f"{'class':<{width}}", *(f"{s:>10}" for s in splits)])]
        for i, name in enumerate(self.class_names):
            lines.append("  ".join([f"{name:<{width}}", *(f"{self.counts[s][i]:>10}" for s in splits)]))
        lines.append("  ".join([f"{'total':<{width}}", *(f"{sum(self.counts[s]):>10}" for s in splits)]))
        lines.extend(skipped_report(self.skipped))
        return "\n".join(lines)

    def to_dict(self):
        """Plain JSON-serialisable description (no datasets)."""
        return {
            "source": self.source,
            "class_names": list(self.class_names),
            "counts": {s: list(map(int, c)) for s, c in self.counts.items()},
            "image_size": list(self.image_size),
            "batch_size": self.batch_size,
            "augment": self.augment,
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
        }


def skipped_report(skipped):
    """Lines naming how many files were skipped and the first few."""
    return file_list(f"Skipped {len(skipped)} unreadable file(s):", skipped)


def file_list(heading, files):
    """`heading`, then the first `SKIPPED_SHOWN` of `files` (`(path, why)` pairs) and how many more; `[]` for none."""
    if not files:
        return []
    lines = [heading] + [f"  {path}: {why}" for path, why in files[:SKIPPED_SHOWN]]
    if len(files) > SKIPPED_SHOWN:
        lines.append(f"  ... and {len(files) - SKIPPED_SHOWN} more")
    return lines


def validate_split_args(*, validation_split, test_split, batch_size, augment, resize):
    validate_fractions(validation_split, test_split)
    check_choice("resize", resize, RESIZE_POLICIES)
    check_int("batch_size", batch_size, minimum=1)
    check_choice("augment", augment, AUGMENTATIONS)


def splits_from_files(
    items, class_names, *, image_size, resize, validation_split, test_split, seed,
    batch_size, augment, cache, skipped, source,
):
    """Builds `ImageSplits` from `(path, label, key)` items; `key` decides the split."""
    grouped = {s: [] for s in SPLITS}
    for path, label, key in items:
        split = assign_split(key, seed=seed, validation_split=validation_split, test_split=test_split)
        grouped[split].append((path, label))
    aug = augmentation(augment, seed)

    def dataset(split):
        return items_dataset(grouped[split], image_size=image_size, resize=resize, batch_size=batch_size,
                             shuffle=split == "train", seed=seed, augmentation=aug if split == "train" else None,
                             cache=split_cache(cache, split))

    return ImageSplits(
        class_names=list(class_names), train=dataset("train"),
        validation=dataset("validation"), test=dataset("test"),
        counts={s: class_counts([l for _, l in grouped[s]], len(class_names)) for s in SPLITS},
        image_size=tuple(image_size), batch_size=batch_size, augment=augment,
        skipped=list(skipped), files=grouped,
        source={**source, "seed": seed, "validation_split": validation_split,
                "test_split": test_split, "resize": resize},
    )


def splits_from_arrays(
    images, labels, class_names, *, image_size, resize, validation_split, test_split, seed,
    batch_size, augment, source,
):
    """Builds `ImageSplits` from arrays; an image's index decides its split."""
    assigned = np.array([
        assign_split(i, seed=seed, validation_split=validation_split, test_split=test_split)
        for i in range(len(images))
    ])
    aug = augmentation(augment, seed)
    datasets, counts = {}, {}
    for split in SPLITS:
        index = np.flatnonzero(assigned == split)
        split_labels = labels[index]
        counts[split] = class_counts(split_labels, len(class_names))
        datasets[split] = None if not len(index) else array_dataset(
            images[index], split_labels, image_size=image_size, resize=resize,
            batch_size=batch_size,
            shuffle=split == "train", seed=seed,
            augmentation=aug if split == "train" else None,
        )
    return ImageSplits(
        class_names=list(class_names), train=datasets["train"],
        validation=datasets["validation"], test=datasets["test"], counts=counts,
        image_size=tuple(image_size), batch_size=batch_size, augment=augment, skipped=[],
        files=None,
        source={**source, "seed": seed, "validation_split": validation_split,
                "test_split": test_split, "resize": resize},
    )


def all_held_out(splits):
    """The same images as one held-out split: a folder that is only evaluated on, never trained on.

    Every image of a file source becomes the validation split, in file order,
    unshuffled; `source` records `"held_out": True`, so that a run folder
    re-reads it the same way (see `run_data.run_splits`).
    """
    files = [item for split in SPLITS for item in splits.files[split]]
    validation = items_dataset(files, image_size=splits.image_size, resize=splits.source.get("resize", "stretch"),
                               batch_size=splits.batch_size, shuffle=False, seed=0, augmentation=None)
    empty = [0] * len(splits.class_names)
    return dataclasses.replace(
        splits, train=None, validation=validation, test=None,
        counts={"train": empty, "validation": class_counts([label for _, label in files], len(splits.class_names)),
                "test": empty},
        files={"train": [], "validation": files, "test": []}, source={**splits.source, "held_out": True})


def items_dataset(items, *, image_size, resize, batch_size, shuffle, seed, augmentation, cache=False):
    """A batched dataset of `(path, label)` items, or `None` for no items."""
    if not items:
        return None
    paths, labels = zip(*items)
    return file_dataset(list(paths), np.asarray(labels, np.int32), image_size=image_size, resize=resize,
                        batch_size=batch_size, shuffle=shuffle, seed=seed, augmentation=augmentation, cache=cache)


def split_cache(cache, split):
    if cache is None or cache is False or cache is True:
        return bool(cache)
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / split)
