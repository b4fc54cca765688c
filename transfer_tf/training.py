"""`fine_tune`: the two-phase transfer-learning recipe.

Phase 1 trains the head on a frozen base. Phase 2 unfreezes the top blocks of
the base and continues at a lower learning rate, BatchNormalization kept in
inference mode. Changing `trainable` needs a fresh `compile()` in Keras, so
the phases are two explicit `fit` calls (`phases.run_phase` compiles each).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from transfer_tf import feature_cache
from transfer_tf.data.labels import balanced_class_weight, class_counts
from transfer_tf.data.pipeline import array_dataset, recipe_of
from transfer_tf.freezing import (
    all_layers, blocks_to_unfreeze, freeze_base, is_batchnorm, unfreeze_top_blocks,
)
from transfer_tf.phases import FitOptions, Phase, run_phase
from transfer_tf.records import FineTuneResult
from transfer_tf.settings import FineTuneSettings, fill, keywords_of

DEFAULT_BATCH_SIZE = 32


@keywords_of(FineTuneSettings)
def fine_tune(classifier, train_data, validation_data=None, *, settings=None, callbacks=(),
              verbose="auto", **keywords):
    """Trains a classifier in two phases: the head, then the top blocks too.

    Phase 1 freezes the base and trains the head for `head_epochs` at
    `head_lr`. Phase 2 unfreezes the top `unfreeze_blocks` blocks of the base,
    recompiles at `fine_tune_lr` and trains `fine_tune_epochs` more epochs,
    numbered on from phase 1. BatchNormalization moving statistics never
    change. The classifier is trained in place.

    Without augmentation the frozen part of the base gives the same output
    every epoch, so by default it runs once: phase 1 trains the head on the
    cached base outputs, and phase 2 trains the unfrozen blocks and the head
    on the cached activations below them. The batches, their order and the
    result are those of the uncached path (see `feature_cache`). Augmented
    data, or a `tf.data` pipeline transfer_tf did not build, runs the whole
    model every epoch, and the output says so.

    Args:
        classifier: `ImageClassifier`. Usually from
            `ImageClassifier.from_backbone`.
        train_data: a batched `tf.data.Dataset` of `(images, labels)`, or a
            tuple `(images, labels)` of arrays. Images are raw pixels 0-255 of
            the classifier's input size. Labels are class indices for
            `"multiclass"` and `"binary"`, multi-hot rows for `"multilabel"`.
        validation_data: the same kinds, or `None`. Defaults to `None`.
        settings: `FineTuneSettings` or `None`. All settings at once; the
            keywords below change single ones. Defaults to `None`.
        callbacks: list of `keras.callbacks.Callback`. Passed to both phases.
            Callbacks see the model being fitted: the head, or the top
            blocks and the head, when cached. Defaults to `()`.
        verbose: `"auto"`, 0, 1 or 2. Passed to `fit`; 0 also silences the
            phase headers. Defaults to `"auto"`.
        head_epochs: int. Epochs of phase 1. Defaults to `5`.
        fine_tune_epochs: int. Epochs of phase 2. Defaults to `5`.
        unfreeze_blocks: int or `"all"`. Blocks of the base, counted from the
            output, that train in phase 2; `0` trains the head only (feature
            extraction), `"all"` the whole base. Defaults to `1`.
        head_lr: float. Adam learning rate of phase 1. Defaults to `1e-3`.
        fine_tune_lr: float or `None`. Adam learning rate of phase 2.
            Defaults to `None`, meaning `head_lr / 100`.
        train_bn: bool. Whether BatchNormalization layers in the unfrozen
            blocks train their gamma and beta in phase 2 (their moving
            statistics stay fixed either way). Defaults to `False`.
        early_stopping_patience: int or `None`. If set, each phase stops after
            this many epochs without a lower validation loss and restores its
            best weights. Needs `validation_data`. Defaults to `None`.
        class_weight: dict, `"balanced"` or `None`. Weight per class index;
            `"balanced"` weighs each class by `n / (k * count)`. Not for
            `"multilabel"`. Defaults to `None`.
        label_smoothing: float. In [0, 1). Defaults to `0.0`.
        feature_cache: `"auto"`, `"memory"`, `"off"` or a `pathlib.Path`.
            `"auto"` keeps the cached tensors in memory up to 4 GB, else in
            `.npy` files under `cache_dirs.feature_cache_dir()`; a path keeps
            them in files there, reused by later runs on the same data and
            weights; `"off"` runs the whole model every epoch. Defaults to
            `"auto"`.
        jit_compile: bool. Compile the training steps with XLA. Meant for
            GPUs; on a small CPU it can be much slower. Defaults to `False`.
        batch_size: int or `None`. Batch size for array inputs; a
            `tf.data.Dataset` is already batched, so it must be `None` then.
            Defaults to `None`, meaning 32 for arrays.
        seed: int or `None`. Seeds Python, NumPy and TensorFlow for a
            repeatable run. Defaults to `None`.

    Returns:
        A `FineTuneResult`. It is also kept as `classifier.training_record`,
        and `classifier.save(...)` writes it to `history.json`.

    Raises:
        ValueError: for a setting out of range, data whose images do not
            match the classifier's input, or early stopping without
            validation data.
        TypeError: for an unknown keyword.

    Example:

    >>> clf = ImageClassifier.from_backbone(
    ...     "vgg16", num_classes=2, image_size=32, weights=None)
    >>> x = np.random.uniform(0, 255, (8, 32, 32, 3))
    >>> y = np.arange(8) % 2
    >>> result = fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=1,
    ...                    verbose=0)
    >>> result.phase_boundary
    1
    """
    s = fill({"s": FineTuneSettings}, keywords, {"s": settings}, caller="fine_tune")["s"]
    check_settings_for(classifier, s, validation_data)
    if s.seed is not None:
        keras.utils.set_random_seed(s.seed)
    train, validation = training_data(classifier, train_data, validation_data, s.batch_size, s.seed)
    options = FitOptions.for_classifier(
        classifier, label_smoothing=s.label_smoothing, callbacks=tuple(callbacks),
        class_weight=class_weight_for(s.class_weight, train, classifier),
        patience=s.early_stopping_patience, verbose=verbose, jit_compile=s.jit_compile)

    freeze_base(classifier)
    cache, report = feature_cache.start(classifier, train, validation,
                                        s.unfreeze_blocks if s.fine_tune_epochs else 0,
                                        s.feature_cache, verbose=verbose != 0)
    head = run_phase(phase_of(classifier, "head", cache.head_phase(), (), s.head_epochs, s.head_lr),
                     options, classifier)
    unfrozen = unfreeze_top_blocks(classifier, s.unfreeze_blocks, train_bn=s.train_bn)
    tuned = run_phase(phase_of(classifier, "fine_tune", cache.fine_tune_phase(unfrozen), unfrozen,
                               s.fine_tune_epochs, s.fine_tune_learning_rate, head[0].end_epoch),
                      options, classifier)

    result = FineTuneResult.merge([head, tuned], s.to_dict(), cache=dataclasses.asdict(report))
    classifier.training_record = result
    return result


def phase_of(classifier, name, data, unfrozen, epochs, learning_rate, first_epoch=0):
    """A `Phase` of `fine_tune` on what the cache gave it, with its header line."""
    what = "head only, base frozen" if not unfrozen else f"blocks {', '.join(unfrozen)} + head"
    if unfrozen and any(map(is_batchnorm, all_layers(classifier.base))):
        what += ", BatchNorm in inference mode"
    if data.note:
        what += f"; on {data.note}"
    number = 1 if name == "head" else 2
    header = (f"Phase {number}/2 ({name}): {epochs} epochs at learning rate {learning_rate:g}; "
              f"training {what}")
    return Phase(name, data.model, data.train, data.validation, epochs, learning_rate,
                 first_epoch=first_epoch, trainable_blocks=tuple(unfrozen), header=header)


def check_settings_for(classifier, settings, validation_data):
    """The checks that need the classifier or the data, made before any work."""
    if settings.early_stopping_patience is not None and validation_data is None:
        raise ValueError(
            "Early stopping watches the validation loss: pass validation_data, "
            f"or leave early_stopping_patience=None. Received: "
            f"early_stopping_patience={settings.early_stopping_patience}, validation_data=None"
        )
    check_class_weight(settings.class_weight, classifier)
    blocks_to_unfreeze(classifier, settings.unfreeze_blocks)  # raises if out of range


def check_class_weight(class_weight, classifier):
    if class_weight is not None and classifier.task == "multilabel":
        raise ValueError(
            "class_weight applies to one label per image; a multilabel task has "
            f"several. Received: class_weight={class_weight!r}"
        )
    if isinstance(class_weight, dict) and set(class_weight) != set(range(classifier.num_classes)):
        raise ValueError(
            f"class_weight must give a weight for each class index 0..{classifier.num_classes - 1}. "
            f"Received: class_weight={class_weight!r}"
        )


def training_data(classifier, train_data, validation_data, batch_size, seed):
    """`(train, validation)` datasets from datasets or arrays, checked against the classifier."""
    train = _as_dataset(train_data, classifier, batch_size, "train_data", shuffle=True, seed=seed)
    validation = None if validation_data is None else _as_dataset(
        validation_data, classifier, batch_size, "validation_data", shuffle=False, seed=seed)
    return train, validation


def _as_dataset(data, classifier, batch_size, argument, *, shuffle, seed):
    if isinstance(data, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(
                f"{argument} is a tf.data.Dataset, which is already batched; "
                f"batch_size applies to arrays only. Received: batch_size={batch_size}"
            )
        dataset = data
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = (np.asarray(part) for part in data)
        if len(images) != len(labels):
            raise ValueError(
                f"{argument} has {len(images)} images but {len(labels)} labels."
            )
        _check_shape(images.shape[1:], classifier, argument, f"images.shape={images.shape}")
        dataset = array_dataset(
            images, labels, image_size=classifier.image_size, resize="stretch",
            batch_size=batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle, seed=seed, augmentation=None)
    else:
        raise ValueError(
            f"{argument} must be a batched tf.data.Dataset of (images, labels) or a "
            f"tuple (images, labels) of arrays. Received: {type(data).__name__}"
        )
    spec = dataset.element_spec
    shape = tuple(spec[0].shape) if isinstance(spec, tuple) else ()
    _check_shape(shape[1:] if len(shape) == 4 else None, classifier, argument, f"element_spec={spec}")
    return dataset


def _check_shape(shape, classifier, argument, received):
    expected = (*classifier.image_size, 3)
    fits = shape is not None and len(shape) == 3 and all(
        got is None or got == want for got, want in zip(shape, expected))
    if not fits:
        raise ValueError(
            f"{argument} must yield batches (images, labels) with images of shape "
            f"(batch, {expected[0]}, {expected[1]}, 3), raw pixels 0-255; resize "
            f"them to the classifier's image_size. Received: {received}"
        )


def class_weight_for(class_weight, train, classifier):
    """The class-weight dict `fit` takes: `"balanced"` counted from the training labels."""
    if class_weight != "balanced":
        return class_weight
    recipe = recipe_of(train)
    # The recipe's labels spare a pass over the data, which would also move its shuffle on.
    labels = recipe.labels if recipe is not None else np.concatenate(
        [np.asarray(y) for y in train.map(lambda x, y, *rest: y).as_numpy_iterator()])
    return balanced_class_weight(class_counts(labels, classifier.num_classes), classifier.class_names)
