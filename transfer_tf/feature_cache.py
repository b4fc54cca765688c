"""Cached features: run the frozen part of the base once, not every epoch.

In phase 1 the whole base is frozen and in inference mode, so its output for
an image never changes: `fine_tune` computes it once per image and trains the
head on it. In phase 2 only the top blocks train; the output of the frozen
blocks below them is fixed too, so it is cached in the same pass and only the
top blocks and the head run each epoch.

Equivalence with the uncached path is by construction. A dataset transfer_tf
built has a `Recipe` whose index dataset is the dataset's own shuffled index
stage; the cached datasets are derived from it, so they share its shuffle op
and draw the same order, batch for batch and epoch for epoch, with each index
looked up in the cache instead of decoded and run through the base. The head,
its dropout and the optimizer see the same inputs in the same order, up to
float rounding. The cache only answers "which model, on which data" for each
phase; it changes nothing in the classifier.

The cache lives in memory when it fits `MEMORY_BUDGET`, else in `.npy` files
under the cache folder, keyed on the backbone, a hash of the base weights,
the image size, the cut point and a fingerprint of the data; files there are
reused by later runs on the same data and weights.
"""

import dataclasses
import functools
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.backbones import split_base
from transfer_tf.cache_dirs import feature_cache_dir
from transfer_tf.data.pipeline import recipe_of
from transfer_tf.freezing import blocks_to_unfreeze
from transfer_tf.integrity import damage, fingerprint, folder_lock, write_atomically
from transfer_tf.precision import compute_dtypes

MEMORY_BUDGET = 4 * 2**30
FORMAT_VERSION = 2  # 2: key.json records each array's shape, dtype, size and checksum


@dataclasses.dataclass
class CacheReport:
    """What the feature cache did in one `fine_tune` (kept in its result).

    Attributes:
        used: bool. Whether any phase trained on cached tensors.
        reason: str. Why not, when not; else empty.
        phases: list of str. The phases that ran on cached tensors.
        cut: str or `None`. The first block phase 2 trains (activations
            below it are cached).
        location: str. `"memory"` or the folder of the `.npy` files.
        megabytes: float. Size of the cached tensors.
        seconds: float. Time to compute (or load) them.
        reused: bool. Whether they were loaded from an earlier run's files.
    """

    used: bool
    reason: str = ""
    phases: list = dataclasses.field(default_factory=list)
    cut: object = None
    location: str = ""
    megabytes: float = 0.0
    seconds: float = 0.0
    reused: bool = False


@dataclasses.dataclass
class PhaseData:
    """What one phase fits: the model (the classifier or a part of it), its data, a note."""

    model: object
    train: object
    validation: object
    note: str = ""


class Uncached:
    """Every phase fits the whole classifier on the images."""

    def __init__(self, classifier, datasets):
        self.classifier = classifier
        self.datasets = datasets

    def head_phase(self):
        return PhaseData(self.classifier, self.datasets["train"], self.datasets.get("validation"))

    def fine_tune_phase(self, unfrozen):
        return self.head_phase()

    def feature_maps(self):
        """The model from phase 2's inputs (raw images) to the base's feature maps."""
        inputs = keras.Input((*self.classifier.image_size, 3))
        classifier = self.classifier
        return keras.Model(inputs, classifier.base(classifier.preprocessor(inputs), training=False),
                           name="images_to_features")

    def inputs(self, name):
        """Dataset `name` as phase 2 takes it: the images."""
        return self.datasets[name]


def start(classifier, datasets, unfreeze_blocks, mode, *, verbose):
    """The cache for this run, or `Uncached` and why not, with its `CacheReport`.

    Args:
        datasets: dict of name to dataset or `None`. `fine_tune` passes
            `"train"` and `"validation"`; other trainers add their own
            (the target domain, ...).

    Call after the base is frozen: the cache holds what the frozen base computes.
    """
    datasets = {name: data for name, data in datasets.items() if data is not None}
    reason = why_not(datasets, mode)
    if reason:
        if verbose and str(mode) != "off":
            print(f"Features not cached: {reason}. The base runs on every image every epoch.")
        return Uncached(classifier, datasets), CacheReport(used=False, reason=reason)
    cache = FeatureCache.compute(classifier, datasets, unfreeze_blocks, mode, verbose=verbose)
    return cache, cache.report


def why_not(datasets, mode):
    """The reason features cannot be cached for these datasets, or `""`."""
    if str(mode) == "off":
        return "feature_cache='off'"
    for name, data in datasets.items():
        recipe = recipe_of(data)
        label = f"{name}_data" if name in ("train", "validation") else f"the {name} data"
        if recipe is None:
            return (f"{label} is a tf.data pipeline transfer_tf did not build (or one mapped "
                    "since), so its images cannot be matched to cached features; pass arrays "
                    "or the datasets of ttf.data loaders")
        if recipe.augmented:
            return f"{label} is augmented: every epoch sees new images"
    return ""


class FeatureCache:
    """Cached base outputs (and phase 2 activations) of named datasets.

    Build one with `FeatureCache.compute`. It answers one question per
    phase: which model, on which data. Datasets come from each one's
    `Recipe`: the same index order as the images, looked up in the cache.
    """

    def __init__(self, classifier, datasets, cut, top, arrays, report):
        self.classifier = classifier
        self.datasets = datasets
        self.cut = cut
        self.top = top
        self.arrays = arrays
        self.report = report

    @classmethod
    def compute(cls, classifier, datasets, unfreeze_blocks, mode, *, verbose):
        """Runs the frozen base once over every dataset (or loads an earlier run's files)."""
        recipes = {name: recipe_of(data) for name, data in datasets.items()}
        cut = cut_block(classifier, unfreeze_blocks)
        bottom, top = (None, None) if cut is None else split_base(
            classifier.base, classifier.backbone_spec, cut)
        arrays, report = _Filler(classifier, recipes, cut, bottom, top).fill(mode, MEMORY_BUDGET, verbose)
        return cls(classifier, datasets, cut, top, arrays, report)

    def head_phase(self):
        """Phase 1: the head alone, on the cached base outputs."""
        self.report.phases = ["head"]
        return PhaseData(self.classifier.head, *self._train_validation("features"), "cached base outputs")

    def fine_tune_phase(self, unfrozen):
        """Phase 2: the unfrozen blocks + head on cached activations, where there is a cut."""
        if self.cut is not None:
            self.report.phases.append("fine_tune")
            model = TopAndHead(self.top, self.classifier.head, name="top_and_head")
            return PhaseData(model, *self._train_validation("activations"),
                             f"cached activations below {self.cut}")
        if not unfrozen:
            self.report.phases.append("fine_tune")
            return PhaseData(self.classifier.head, *self._train_validation("features"),
                             "cached base outputs")
        # The whole base trains: the images, in the order the cached phase 1 left them.
        return PhaseData(self.classifier, self.datasets["train"], self.datasets.get("validation"))

    def feature_maps(self):
        """The model from phase 2's inputs to the base's feature maps: the top blocks, or the base."""
        return self.top if self.cut is not None else Uncached(self.classifier, {}).feature_maps()

    def inputs(self, name):
        """Dataset `name` as phase 2 takes it: cached activations below the cut, or the images."""
        if self.cut is None:
            return self.datasets[name]
        return self._dataset(name, "activations")

    def _train_validation(self, kind):
        return tuple(None if split not in self.datasets else self._dataset(split, kind)
                     for split in ("train", "validation"))

    def _dataset(self, name, kind):
        array = self.arrays[name][kind]
        return recipe_of(self.datasets[name]).batches(
            array.__getitem__, tf.TensorSpec((None, *array.shape[1:]), tf.float32))


def cut_block(classifier, unfreeze_blocks):
    """The first block phase 2 trains when it is not the first of the base, else `None`."""
    spec = classifier.backbone_spec
    unfrozen = blocks_to_unfreeze(classifier, unfreeze_blocks)
    if unfrozen and unfreeze_blocks != "all" and spec is not None and unfrozen[0] != spec.block_names[0]:
        return unfrozen[0]
    return None


class _Filler:
    """Computes (or reloads) the cached tensors of each split."""

    def __init__(self, classifier, recipes, cut, bottom, top):
        self.classifier = classifier
        self.recipes = recipes
        self.cut = cut
        self.bottom = bottom
        self.top = top

    def fill(self, mode, memory_budget, verbose):
        """Returns `(arrays, report)`: per split, per kind (`features`, `activations`), an array."""
        report = CacheReport(used=True, cut=self.cut)
        kinds = {"features": self.classifier.base.output.shape[1:]}
        if self.cut is not None:
            kinds["activations"] = self.bottom.output.shape[1:]
        counts = {split: recipe.count for split, recipe in self.recipes.items()}
        total = sum(counts.values()) * sum(int(np.prod(s)) for s in kinds.values()) * 4
        on_disk = str(mode) != "memory" and (str(mode) != "auto" or total > memory_budget)
        folder = None
        if on_disk:
            folder = (feature_cache_dir() if str(mode) == "auto" else Path(mode)) / self._key()
        report.location = "memory" if folder is None else str(folder)
        report.megabytes = total / 2**20
        intro = None
        start = time.perf_counter()
        if verbose:
            cut = f", and the activations below {self.cut} for phase 2" if self.cut else ""
            where = "in memory" if folder is None else f"in {folder}"
            images = " + ".join(f"{n} {s}" for s, n in counts.items())
            intro = (f"Feature cache: running the frozen base once over {images} images{cut} "
                     f"({report.megabytes:,.0f} MB {where}) ...")
        if folder is None:
            if verbose:
                print(intro)
            arrays = {split: self._compute(recipe, kinds, None, split, verbose)
                      for split, recipe in self.recipes.items()}
            computed = list(self.recipes)
        else:
            with folder_lock(folder):  # a second run on this folder waits, then reuses
                arrays, computed = self._fill_folder(folder, kinds, intro if verbose else None, verbose)
            if verbose and not computed:
                print(f"Feature cache: reusing {report.megabytes:,.0f} MB from {folder} (verified)")
        report.seconds = time.perf_counter() - start
        report.reused = not computed
        if verbose and computed:
            print(f"Feature cache: done in {report.seconds:.1f} s.")
        return arrays, report

    def _fill_folder(self, folder, kinds, intro, verbose):
        """Loads each split's verified files, computes the rest; returns `(arrays, computed splits)`.

        `key.json` records every array's shape, dtype, size and checksum; it
        is written last, atomically. A file that does not match its record
        (truncated, zeroed, changed, missing) is never used: its split is
        computed again, with one line saying so.
        """
        key_file = folder / "key.json"
        try:
            records = json.loads(key_file.read_text()).get("arrays", {}) if key_file.is_file() else {}
        except (OSError, ValueError, AttributeError):
            records = {}
            print(f"Feature cache: {key_file} is damaged (unreadable); computing the features again.",
                  file=sys.stderr)
        arrays, computed = {}, []
        for split, recipe in self.recipes.items():
            expected = {k: [recipe.count, *map(int, shape)] for k, shape in kinds.items()}
            loaded, reason = _load_verified(folder, split, expected, records)
            if loaded is not None:
                arrays[split] = loaded
                continue
            if reason is not None:
                print(f"Feature cache: {reason}; computing that split again.", file=sys.stderr)
            if intro is not None:
                print(intro)
                intro = None
            arrays[split] = self._compute(recipe, kinds, folder, split, verbose)
            records.update({f"{split}_{k}.npy": {"shape": expected[k], "dtype": "float32",
                                                 **fingerprint(folder / f"{split}_{k}.npy")} for k in kinds})
            computed.append(split)
        if computed:
            write_atomically(key_file, lambda path: path.write_text(
                json.dumps({**self._key_fields, "arrays": records}, indent=2) + "\n"))
        return arrays, computed

    def _compute(self, recipe, kinds, folder, split, verbose):
        arrays, partial = {}, {}
        for kind, shape in kinds.items():
            full = (recipe.count, *shape)
            if folder is None:
                arrays[kind] = np.empty(full, np.float32)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                # Named uniquely: the workers of a cluster may fill one shared folder at once.
                partial[kind] = folder / f".{split}_{kind}.{uuid.uuid4().hex}.npy.partial"
                arrays[kind] = np.lib.format.open_memmap(partial[kind], mode="w+", dtype=np.float32, shape=full)
        forward = self._forward
        progress = keras.utils.Progbar(recipe.count, unit_name="image") if verbose else None
        for start in range(0, recipe.count, recipe.batch_size):
            rows = slice(start, min(start + recipe.batch_size, recipe.count))
            # Decoded here, not in a parallel pipeline: threads decoding beside
            # the forward pass slowed it by up to 60 % on 2 cores.
            images = np.asarray(recipe.images_for(np.arange(rows.start, rows.stop)), np.float32)
            outputs = forward(images)
            for kind in kinds:
                arrays[kind][rows] = outputs[kind].numpy()
            if progress is not None:
                progress.update(rows.stop)
        for kind, path in partial.items():
            arrays[kind].flush()
            del arrays[kind]
            final = folder / f"{split}_{kind}.npy"
            os.replace(path, final)  # only complete files get the real name
            arrays[kind] = np.load(final, mmap_mode="r")
        return arrays

    @functools.cached_property
    def _forward(self):
        """The frozen base as one `tf.function`, traced once for every split and batch size."""
        classifier = self.classifier

        @tf.function(input_signature=[_image_spec(classifier)])
        def forward(images):
            inputs = classifier.preprocessor(images)
            if self.cut is None:
                return {"features": classifier.base(inputs, training=False)}
            activations = self.bottom(inputs, training=False)
            return {"activations": activations, "features": self.top(activations, training=False)}

        return forward

    @functools.cached_property
    def _key_fields(self):
        classifier = self.classifier
        digest = hashlib.sha256()
        for weight in classifier.base.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
        return {
            "format_version": FORMAT_VERSION,
            "backbone": classifier.backbone_name,
            "base_weights_sha256": digest.hexdigest(),
            "image_size": list(classifier.image_size),
            "preprocessing": classifier.preprocessing,
            "compute_dtypes": compute_dtypes(classifier.base),
            "cut": self.cut,
            "data": {split: recipe.fingerprint() for split, recipe in self.recipes.items()},
        }

    def _key(self):
        text = json.dumps(self._key_fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


class TopAndHead(keras.Model):
    """The unfrozen top blocks and the head, fed the cached activations below them.

    Calls the top in inference mode as `ImageClassifier.call` calls the base,
    so BatchNormalization never updates its statistics.
    """

    def __init__(self, top, head, **kwargs):
        super().__init__(**kwargs)
        self.top = top
        self.head = head
        self.built = True  # both parts are built models (BackupAndRestore needs a built model)

    def call(self, activations, training=None):
        return self.head(self.top(activations, training=False), training=training)


def _load_verified(folder, split, expected, records):
    """`(arrays, None)`, memory-mapped, if every file of the split matches its record, else `(None, reason)`.

    The reason is `None` when nothing of the split was ever written (a new entry).
    """
    arrays = {}
    for kind, shape in expected.items():
        name = f"{split}_{kind}.npy"
        path, record = folder / name, records.get(name)
        if record is None and not path.exists():
            return None, None
        reason = damage(path, record)
        if reason is None and (record.get("shape") != shape or record.get("dtype") != "float32"):
            reason = f"it holds {record.get('dtype')} {record.get('shape')}, not float32 {shape}"
        if reason is None:
            try:
                arrays[kind] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                reason = f"unreadable ({error})"
        if reason is None and (list(arrays[kind].shape) != shape or arrays[kind].dtype != np.float32):
            reason = f"its header says {arrays[kind].dtype} {list(arrays[kind].shape)}, not float32 {shape}"
        if reason is not None:
            return None, f"{path} is damaged: {reason}"
    return arrays, None


def _image_spec(classifier):
    return tf.TensorSpec((None, *classifier.image_size, 3), tf.float32)
