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

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.backbones.blocks import split_base
from transfer_tf.data.pipeline import recipe_of
from transfer_tf.model.freezing import blocks_to_unfreeze
from transfer_tf.model.inference import batch_function
from transfer_tf.training.cache_filling import CacheFiller

MEMORY_BUDGET = 4 * 2**30


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

    def head_outputs(self, name, *, base_trained):
        """Nothing is cached: a report runs the whole model."""
        return None


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
        report = CacheReport(used=True, cut=cut)
        arrays = CacheFiller(classifier, recipes, cut, bottom, top).fill(mode, MEMORY_BUDGET, report, verbose)
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

    def head_outputs(self, name, *, base_trained):
        """The head's outputs on dataset `name` now, in its natural order, from the cache.

        What the classifier's head gives on those images (before its
        calibration layer), found by running only the blocks above the cut
        and the head on the cached activations (or the head on the cached
        base outputs).

        Args:
            base_trained: bool. Whether phase 2 trained any block of the
                base. Without a cut the cached base outputs no longer hold
                then, and the answer is `None`.
        """
        if (base_trained and self.cut is None) or name not in self.datasets:
            return None
        kind = "features" if self.cut is None else "activations"
        array = self.arrays[name][kind]
        model = self.classifier.head if self.cut is None else TopAndHead(self.top, self.classifier.head)
        run = batch_function(model)
        size = recipe_of(self.datasets[name]).batch_size
        return np.concatenate([run(np.asarray(array[i:i + size], np.float32)) for i in range(0, len(array), size)])

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
