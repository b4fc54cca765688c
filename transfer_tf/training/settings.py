"""The settings of a training run, each declared once.

A setting is one field of a frozen dataclass: its default, its check, its
help text and how the command line offers it. `fine_tune(**keywords)` fills
`FineTuneSettings`; the jobs of `cli.jobs` take `ModelSettings`,
`DataSettings` and `FineTuneSettings` whole; a run folder records them; and
`add_arguments` generates the `transfer-tf` options from the same fields, so
a new setting is written in one place (the machinery: `core.settings_base`).

Pure Python: the command line builds its parser from these classes without
loading TensorFlow.
"""

import dataclasses
import os
from pathlib import Path

from transfer_tf.core.checks import check_choice, check_int, check_number, is_int, is_number
from transfer_tf.core.choices import (
    AUGMENTATIONS,
    CLASS_WEIGHTS,
    DTYPE_POLICIES,
    FEATURE_CACHE_MODES,
    HEADS,
    POOLINGS,
    RESIZE_POLICIES,
    SCHEDULES,
)
from transfer_tf.core.settings_base import Settings, setting


def parse_blocks(value):
    """`"all"`, a number of blocks, or the name of a block or unit (checked against the backbone later)."""
    if str(value).lower() == "all":
        return "all"
    try:
        return int(value)
    except ValueError:
        return str(value)


def parse_feature_cache(value):
    """`auto`, `memory`, `off` or a folder."""
    return value if value in FEATURE_CACHE_MODES else Path(value)


def parse_weights(value):
    """`none` means random weights; anything else is a name or a path."""
    return None if str(value).lower() == "none" else value


def parse_rate(value):
    """A learning rate, or `find` (the learning-rate finder's suggestion)."""
    return "find" if str(value).lower() == "find" else float(value)


def parse_rates(value):
    """A rate, `low,high` (discriminative rates over the unfrozen blocks), or `find`."""
    text = str(value).lower()
    if text == "find":
        return "find"
    if "," in text:
        low, high = (float(v) for v in text.split(","))
        return (low, high)
    return float(value)


def check_rate(name, value, *, pair=False, optional=False):
    """A rate > 0, `"find"`, or with `pair` a `(low, high)` of them with low <= high."""
    if value == "find" or (optional and value is None):
        return
    if pair and isinstance(value, (tuple, list)):
        if len(value) == 2 and all(is_number(v) and v > 0 for v in value) and value[0] <= value[1]:
            return
        raise ValueError(f"{name} must be a rate, 'find', or a pair (low, high) with 0 < low <= high. "
                         f"Received: {name}={value!r}")
    check_number(name, value, above=0, optional=optional)


def parse_class_weight(value):
    """`none` or `balanced` (a dict of weights is for Python callers)."""
    if value in (None, "none"):
        return None
    check_choice("class_weight", value, ("none", *CLASS_WEIGHTS))
    return value


@dataclasses.dataclass(frozen=True)
class ModelSettings(Settings):
    """The classifier a job builds (see `ImageClassifier.from_backbone`)."""

    # The default's ImageNet weights ship with transfer_tf (offline everywhere), and it is the fastest
    # registered backbone on a CPU.
    backbone: str = setting("efficientnet_lite0", "see `transfer-tf backbones`")
    weights: object = setting(
        "imagenet", "imagenet, none, or a weights file / run folder", parse=parse_weights)
    image_size: int = setting(None, "input size in pixels (default: the backbone's)", parse=int)
    pooling: str = setting("avg", "global pooling of the head", choices=POOLINGS)
    dropout: float = setting(0.2, "dropout before the head's dense layer", parse=float)
    dtype: str = setting(
        None, "compute in 16 bits with mixed_bfloat16 (CPUs with bfloat16 instructions, TPUs) or "
        "mixed_float16 (GPUs); weights stay float32 (default: float32)", choices=DTYPE_POLICIES)
    head: str = setting(
        "dense", "dense: the head fine-tuning trains; logistic, linear_svm (both become the Dense "
        "head, exportable), rbf_svm, knn: a scikit-learn estimator on the frozen base's features, "
        "its regularisation cross-validated", choices=HEADS)

    def validate(self):
        if not isinstance(self.backbone, str):
            raise ValueError(f"backbone must be a registry name. Received: backbone={self.backbone!r}")
        check_int("image_size", self.image_size, minimum=1, optional=True)
        check_choice("head", self.head, HEADS)
        check_choice("pooling", self.pooling, POOLINGS)
        check_number("dropout", self.dropout, at_least=0, below=1)
        if self.dtype is not None:
            check_choice("dtype", self.dtype, DTYPE_POLICIES)


@dataclasses.dataclass(frozen=True)
class DataSettings(Settings):
    """How a job reads a folder of images (see `data.from_directory`)."""

    augment: str = setting("none", "augmentation of the training images", choices=AUGMENTATIONS)
    resize: str = setting("stretch", "how images reach the input size", choices=RESIZE_POLICIES)
    batch_size: int = setting(32, "images per batch")
    validation_split: float = setting(0.2, "fraction of each class for validation")
    test_split: float = setting(0.0, "fraction of each class held out for testing")
    cache: bool = setting(False, "keep decoded images in memory")
    seed: int = setting(0, "seed of the split, the shuffling and the training")
    exclude: str = setting(None, "files to leave out: the audit.csv of `transfer-tf audit`, or a file of "
                           "paths relative to DATA_DIR, one per line", parse=str, metavar="FILE")

    def validate(self):
        check_choice("augment", self.augment, AUGMENTATIONS)
        check_choice("resize", self.resize, RESIZE_POLICIES)
        check_int("batch_size", self.batch_size, minimum=1)
        for name in ("validation_split", "test_split"):
            check_number(name, getattr(self, name), at_least=0, below=1)
        check_int("seed", self.seed)


@dataclasses.dataclass(frozen=True)
class FineTuneSettings(Settings):
    """The settings of `fine_tune`'s two phases.

    `unfreeze_blocks` is checked against the backbone's blocks when the
    settings meet a classifier (`freezing.blocks_to_unfreeze`).
    """

    head_epochs: int = setting(5, "phase 1 epochs")
    fine_tune_epochs: int = setting(5, "phase 2 epochs")
    unfreeze_blocks: object = setting(
        1, "top blocks trained in phase 2: a number, 'all', or the block or unit to start from "
           "(e.g. conv5_block3: ResNet50's last residual unit)", parse=parse_blocks)
    head_lr: float = setting(1e-3, "phase 1 learning rate, or 'find' (the learning-rate finder's "
                             "valley)", parse=parse_rate)
    fine_tune_lr: float = setting(
        None, "phase 2 learning rate (default: head-lr / 100); LOW,HIGH for rates spread over the "
        "unfrozen blocks (the head gets HIGH); or 'find'", parse=parse_rates)
    head_schedule: str = setting("constant", "phase 1 learning-rate schedule", choices=SCHEDULES)
    fine_tune_schedule: str = setting("constant", "phase 2 learning-rate schedule", choices=SCHEDULES)
    train_bn: bool = setting(
        False, "BatchNorm layers of the unfrozen blocks train gamma and beta (statistics stay fixed)")
    early_stopping_patience: int = setting(
        None, "stop a phase after PATIENCE epochs without a lower validation loss",
        flag="--early-stopping", parse=int, metavar="PATIENCE")
    class_weight: object = setting(
        None, "weigh classes by inverse frequency", parse=parse_class_weight,
        metavar="{none,balanced}")
    label_smoothing: float = setting(0.0, "label smoothing of the loss, in [0, 1)")
    feature_cache: object = setting(
        "auto", "run the frozen base once: auto (memory up to 4 GB, else disk), memory, off, or a "
        "folder to keep and reuse them in", parse=parse_feature_cache, metavar="MODE")
    jit_compile: bool = setting(False, "compile the training steps with XLA (for GPUs)")
    batch_size: int = setting(None, "batch size for arrays (32); datasets come batched", cli=False)
    seed: int = setting(None, "seeds Python, NumPy and TensorFlow", cli=False)

    def validate(self):
        for name in ("head_epochs", "fine_tune_epochs"):
            check_int(name, getattr(self, name))
        check_rate("head_lr", self.head_lr)
        check_rate("fine_tune_lr", self.fine_tune_lr, pair=True, optional=True)
        if isinstance(self.fine_tune_lr, list):
            object.__setattr__(self, "fine_tune_lr", tuple(self.fine_tune_lr))
        check_choice("head_schedule", self.head_schedule, SCHEDULES)
        check_choice("fine_tune_schedule", self.fine_tune_schedule, SCHEDULES)
        check_int("early_stopping_patience", self.early_stopping_patience, optional=True)
        check_number("label_smoothing", self.label_smoothing, at_least=0, below=1)
        check_int("batch_size", self.batch_size, minimum=1, optional=True)
        check_int("seed", self.seed, optional=True)
        check_feature_cache(self.feature_cache)
        object.__setattr__(self, "class_weight", plain_class_weight(self.class_weight))

    @property
    def fine_tune_learning_rate(self):
        """Phase 2's learning rate: `fine_tune_lr` (a pair's high end), or `head_lr / 100`.

        With `head_lr="find"` and no `fine_tune_lr`, `"find"` too: `fine_tune` then
        takes a hundredth of the rate it found for the head.
        """
        if self.fine_tune_lr is None:
            return "find" if self.head_lr == "find" else self.head_lr / 100
        if isinstance(self.fine_tune_lr, tuple):
            return self.fine_tune_lr[1]
        return self.fine_tune_lr

    def to_dict(self):
        rate = self.fine_tune_learning_rate if self.fine_tune_lr is None else self.fine_tune_lr
        return {**super().to_dict(), "fine_tune_lr": list(rate) if isinstance(rate, tuple) else rate}


@dataclasses.dataclass(frozen=True)
class ScratchSettings(Settings):
    """The settings of `train_from_scratch`."""

    epochs: int = setting(10, "epochs", cli=False)
    learning_rate: float = setting(1e-3, "learning rate from scratch", flag="--scratch-lr")
    bn_momentum: float = setting(0.9, "BatchNorm momentum while training", cli=False)
    batch_size: int = setting(None, "batch size for arrays (32)", cli=False)
    class_weight: object = setting(None, "weight per class", cli=False)
    seed: int = setting(None, "seeds Python, NumPy and TensorFlow", cli=False)

    def validate(self):
        check_int("epochs", self.epochs)
        check_number("learning_rate", self.learning_rate, above=0)
        check_number("bn_momentum", self.bn_momentum, above=0, below=1, optional=True)
        check_int("batch_size", self.batch_size, minimum=1, optional=True)
        check_int("seed", self.seed, optional=True)
        object.__setattr__(self, "class_weight", plain_class_weight(self.class_weight))


def check_feature_cache(mode):
    """Accepts `"auto"`, `"memory"`, `"off"` or a folder as a path object."""
    if mode in FEATURE_CACHE_MODES or isinstance(mode, os.PathLike):
        return
    raise ValueError(
        f"feature_cache must be one of {', '.join(FEATURE_CACHE_MODES)} or a folder as a "
        f"pathlib.Path. Received: feature_cache={mode!r}"
    )


def plain_class_weight(class_weight):
    """`None`, `"balanced"`, or a dict of int keys and float values (JSON-safe)."""
    if class_weight is None or class_weight in CLASS_WEIGHTS:
        return class_weight
    if not isinstance(class_weight, dict):
        raise ValueError(
            f"class_weight must be a dict, 'balanced' or None. Received: class_weight={class_weight!r}")
    if not all(is_int(k) and is_number(v) for k, v in class_weight.items()):
        raise ValueError(
            f"class_weight must map class indices to numbers. Received: class_weight={class_weight!r}")
    return {int(k): float(v) for k, v in class_weight.items()}
