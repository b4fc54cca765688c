"""`fine_tune`: the two-phase transfer-learning recipe.

Phase 1 trains the head on a frozen base. Phase 2 unfreezes the top blocks of
the base and continues at a lower learning rate, BatchNormalization kept in
inference mode. Changing `trainable` needs a fresh `compile()` in Keras, so
the phases are two explicit `fit` calls.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from transfer_tf import feature_cache as caching
from transfer_tf.data.pipeline import array_recipe, recipe_of, with_recipe
from transfer_tf.freezing import all_layers, freeze_base, is_batchnorm, unfreeze_top_blocks
from transfer_tf.precision import compute_dtypes


@dataclasses.dataclass
class PhaseResult:
    """What one training phase did.

    Attributes:
        name: str. `"head"` or `"fine_tune"`.
        first_epoch: int. Index of the phase's first epoch in the run.
        epochs: int. Epochs run (fewer than asked if early stopping fired).
        learning_rate: float. The optimizer's learning rate.
        seconds: float. Wall time of the phase's `fit`.
        trainable_blocks: list of str. Blocks of the base that trained.
        trainable_params: int. Number of trainable parameters.
        best: dict. Best value of each metric over the phase (lowest loss,
            highest of the others).
    """

    name: str
    first_epoch: int
    epochs: int
    learning_rate: float
    seconds: float
    trainable_blocks: list
    trainable_params: int
    best: dict


@dataclasses.dataclass
class FineTuneResult:
    """The outcome of `fine_tune`.

    Attributes:
        history: dict. Metric name to per-epoch values across both phases.
        phases: list of `PhaseResult`, in order.
        phase_boundary: int. Index of the first epoch of phase 2 in `history`.
        settings: dict. The arguments `fine_tune` ran with.
        cache: dict or `None`. What the feature cache did
            (`feature_cache.CacheReport` as a dict).
    """

    history: dict
    phases: list
    phase_boundary: int
    settings: dict
    cache: dict = None

    def to_dict(self):
        """Returns the result as plain JSON-serialisable data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["phases"] = [PhaseResult(**phase) for phase in data["phases"]]
        return cls(**data)


def fine_tune(
    classifier,
    train_data,
    validation_data=None,
    *,
    head_epochs=5,
    fine_tune_epochs=5,
    unfreeze_blocks=1,
    head_lr=1e-3,
    fine_tune_lr=None,
    train_bn=False,
    batch_size=None,
    callbacks=(),
    early_stopping_patience=None,
    class_weight=None,
    label_smoothing=0.0,
    feature_cache="auto",
    jit_compile=False,
    seed=None,
    verbose="auto",
):
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
        batch_size: int or `None`. Batch size for array inputs; a
            `tf.data.Dataset` is already batched, so it must be `None` then.
            Defaults to `None`, meaning 32 for arrays.
        callbacks: list of `keras.callbacks.Callback`. Passed to both phases.
            Defaults to `()`.
        early_stopping_patience: int or `None`. If set, each phase stops after
            this many epochs without a lower validation loss and restores its
            best weights. Needs `validation_data`. Defaults to `None`.
        class_weight: dict, `"balanced"` or `None`. Weight per class index;
            `"balanced"` weighs each class by `n / (k * count)`. Not for
            `"multilabel"`. Defaults to `None`.
        label_smoothing: float. In [0, 1). Defaults to `0.0`.
        feature_cache: `"auto"`, `"memory"`, `"off"` or a `pathlib.Path`.
            `"auto"` keeps the cached tensors in memory up to 4 GB, else in
            `.npy` files under `feature_cache_dir()`; a path keeps them in
            files there, reused by later runs on the same data and weights;
            `"off"` runs the whole model every epoch. Callbacks see the model
            being fitted: the head, or the top blocks and the head, when
            cached. Defaults to `"auto"`.
        jit_compile: bool. Compile the training steps with XLA. Meant for
            GPUs; on a small CPU it can be much slower. Defaults to `False`.
        seed: int or `None`. Seeds Python, NumPy and TensorFlow for a
            repeatable run. Defaults to `None`.
        verbose: `"auto"`, 0, 1 or 2. Passed to `fit`; 0 also silences the
            phase headers. Defaults to `"auto"`.

    Returns:
        A `FineTuneResult`. It is also kept as `classifier.training_record`,
        and `classifier.save(...)` writes it to `history.json`.

    Raises:
        ValueError: for an argument out of range, data whose images do not
            match the classifier's input, or early stopping without
            validation data.

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
    fine_tune_lr = head_lr / 100 if fine_tune_lr is None else fine_tune_lr
    settings = dict(
        head_epochs=head_epochs, fine_tune_epochs=fine_tune_epochs,
        unfreeze_blocks=unfreeze_blocks, head_lr=head_lr, fine_tune_lr=fine_tune_lr,
        train_bn=train_bn, batch_size=batch_size,
        early_stopping_patience=early_stopping_patience,
        class_weight=_plain_class_weight(class_weight),
        label_smoothing=label_smoothing,
        feature_cache=str(feature_cache), jit_compile=jit_compile, seed=seed,
    )
    _validate_settings(settings, classifier, validation_data)
    caching.validate_mode(feature_cache)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    train = _as_dataset(train_data, classifier, batch_size, "train_data", shuffle=True, seed=seed)
    validation = None if validation_data is None else _as_dataset(
        validation_data, classifier, batch_size, "validation_data", shuffle=False)
    one_hot = classifier.task == "multiclass" and label_smoothing > 0
    weights = _class_weight(settings["class_weight"], train, classifier)
    fit_args = dict(
        class_weight=weights, callbacks=list(callbacks), patience=early_stopping_patience,
        verbose=verbose, label_smoothing=label_smoothing, one_hot=one_hot, jit_compile=jit_compile,
    )

    def data(dataset):
        return _one_hot(dataset, classifier.num_classes) if one_hot else dataset

    freeze_base(classifier)
    cache, report = caching.start(
        classifier, train, validation, unfreeze_blocks if fine_tune_epochs else 0,
        feature_cache, verbose=verbose != 0)
    uncached = caching.PhaseInput(None, (train, validation), "")
    phase = cache.head_phase() if cache else uncached
    head = _run_phase(
        classifier, "head", (), head_epochs, head_lr, 0, **phase.fit_args(data), **fit_args)
    unfrozen = unfreeze_top_blocks(classifier, unfreeze_blocks, train_bn=train_bn)
    phase = cache.fine_tune_phase(unfrozen) if cache else uncached
    tuned = _run_phase(
        classifier, "fine_tune", unfrozen, fine_tune_epochs, fine_tune_lr,
        head[0].first_epoch + head[0].epochs, **phase.fit_args(data), **fit_args,
    )
    if phase.model is not None:  # leave the classifier compiled, as the uncached path does
        _compile(classifier, classifier, fine_tune_lr, label_smoothing, one_hot, jit_compile)

    result = _merge(head, tuned, settings)
    result.cache = dataclasses.asdict(report)
    classifier.training_record = result
    return result


def _validate_settings(s, classifier, validation_data):
    for key in ("head_epochs", "fine_tune_epochs"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 0:
            raise ValueError(f"{key} must be an int >= 0. Received: {key}={s[key]!r}")
    for key in ("head_lr", "fine_tune_lr"):
        if not isinstance(s[key], (int, float)) or not s[key] > 0:
            raise ValueError(f"{key} must be a number > 0. Received: {key}={s[key]!r}")
    if not 0 <= s["label_smoothing"] < 1:
        raise ValueError(
            f"label_smoothing must be in [0, 1). Received: label_smoothing={s['label_smoothing']!r}"
        )
    patience = s["early_stopping_patience"]
    if patience is not None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(
                "early_stopping_patience must be an int >= 0 or None. "
                f"Received: early_stopping_patience={patience!r}"
            )
        if validation_data is None:
            raise ValueError(
                "Early stopping watches the validation loss: pass validation_data, "
                f"or leave early_stopping_patience=None. Received: "
                f"early_stopping_patience={patience}, validation_data=None"
            )
    weights = s["class_weight"]
    if weights is not None and classifier.task == "multilabel":
        raise ValueError(
            "class_weight applies to one label per image; a multilabel task has "
            f"several. Received: class_weight={weights!r}"
        )
    if not (weights is None or weights == "balanced" or isinstance(weights, dict)):
        raise ValueError(
            f"class_weight must be a dict, 'balanced' or None. Received: class_weight={weights!r}"
        )
    if isinstance(weights, dict) and set(weights) != set(range(classifier.num_classes)):
        raise ValueError(
            f"class_weight must give a weight for each class index 0..{classifier.num_classes - 1}. "
            f"Received: class_weight={weights!r}"
        )
    from transfer_tf.freezing import blocks_to_unfreeze

    blocks_to_unfreeze(classifier, s["unfreeze_blocks"])  # raises if out of range


def _plain_class_weight(class_weight):
    """A class-weight dict with int keys and float values (JSON-safe)."""
    if not isinstance(class_weight, dict):
        return class_weight
    try:
        return {int(k): float(v) for k, v in class_weight.items()}
    except (TypeError, ValueError):
        raise ValueError(
            "class_weight must map class indices to numbers. "
            f"Received: class_weight={class_weight!r}"
        ) from None


def _as_dataset(data, classifier, batch_size, argument, *, shuffle, seed=None):
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
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        if shuffle:
            dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size or 32).prefetch(tf.data.AUTOTUNE)
        dataset = with_recipe(dataset, array_recipe(
            images, labels, shuffle_buffer=len(images) if shuffle else None, seed=seed,
            batch_size=batch_size or 32, augmented=False))
    else:
        raise ValueError(
            f"{argument} must be a batched tf.data.Dataset of (images, labels) or a "
            f"tuple (images, labels) of arrays. Received: {type(data).__name__}"
        )
    _check_images(dataset, classifier, argument)
    return dataset


def _check_images(dataset, classifier, argument):
    spec = dataset.element_spec
    image_spec = spec[0] if isinstance(spec, tuple) else None
    expected = (*classifier.image_size, 3)
    shape = None if image_spec is None else tuple(image_spec.shape)
    fits = shape is not None and len(shape) == 4 and all(
        got is None or got == want for got, want in zip(shape[1:], expected)
    )
    if not fits:
        raise ValueError(
            f"{argument} must yield batches (images, labels) with images of shape "
            f"(batch, {expected[0]}, {expected[1]}, 3), raw pixels 0-255; resize "
            "them to the classifier's image_size. Received: element_spec="
            f"{spec}"
        )


def _one_hot(dataset, num_classes):
    if dataset is None:
        return None
    return dataset.map(
        lambda x, y, *rest: (x, tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), num_classes), *rest)
    )


def _class_weight(class_weight, train, classifier):
    if class_weight != "balanced":
        return class_weight
    counts = np.zeros(classifier.num_classes, dtype=np.int64)
    recipe = recipe_of(train)
    # The recipe's labels spare a pass over the data, which would also move its shuffle on.
    batches = [recipe.labels] if recipe is not None else (
        batch.numpy() for batch in train.map(lambda x, y, *rest: y))
    for labels in batches:
        labels = np.asarray(labels)
        labels = labels.argmax(-1) if labels.ndim == 2 and labels.shape[-1] > 1 else labels.reshape(-1)
        counts += np.bincount(labels.astype(np.int64), minlength=classifier.num_classes)
    return balanced_class_weight(counts, classifier.class_names)


def balanced_class_weight(counts, class_names):
    """Weights `n / (k * count)` per class index from the training counts.

    Raises:
        ValueError: if a class has no training images.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if (counts == 0).any():
        missing = [class_names[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(
            f"class_weight='balanced' needs every class in train_data; no images of {missing}."
        )
    total = counts.sum()
    return {i: float(total / (len(counts) * c)) for i, c in enumerate(counts)}


def _compile(model, classifier, learning_rate, label_smoothing, one_hot, jit_compile=False):
    """Compiles `model` (the classifier, or the part of it a phase fits) for `classifier`'s task."""
    task = classifier.task
    if task == "multiclass":
        if one_hot:
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
            accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
            accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    optimizer = keras.optimizers.Adam(learning_rate)
    if "float16" in compute_dtypes(classifier):
        # Keras adds loss scaling only to a model whose own policy is
        # mixed_float16; the head or top blocks fitted alone may not be one.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy], jit_compile=jit_compile)


def _phase_header(classifier, name, unfrozen, epochs, learning_rate, trainable_params, note=""):
    what = "head only, base frozen" if not unfrozen else f"blocks {', '.join(unfrozen)} + head"
    if unfrozen and any(map(is_batchnorm, all_layers(classifier.base))):
        what += ", BatchNorm in inference mode"
    if note:
        what += f"; on {note}"
    number = 1 if name == "head" else 2
    return (
        f"Phase {number}/2 ({name}): {epochs} epochs at learning rate "
        f"{learning_rate:g}; training {what} ({trainable_params:,} parameters)."
    )


def _run_phase(
    classifier, name, unfrozen, epochs, learning_rate, first_epoch, *, train,
    validation, class_weight, callbacks, patience, verbose, label_smoothing, one_hot,
    jit_compile=False, model=None, header=_phase_header, note="",
):
    """Compiles and fits one phase. `model` (default: the classifier) is what `fit` runs."""
    model = classifier if model is None else model
    _compile(model, classifier, learning_rate, label_smoothing, one_hot, jit_compile)
    trainable_params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    if verbose != 0 and epochs > 0:
        print(header(classifier, name, unfrozen, epochs, learning_rate, trainable_params, note=note))
    phase_callbacks = list(callbacks)
    if patience is not None:
        phase_callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True))
    start = time.perf_counter()
    history = {}
    if epochs > 0:
        fit = model.fit(
            train, validation_data=validation, epochs=first_epoch + epochs,
            initial_epoch=first_epoch, class_weight=class_weight,
            callbacks=phase_callbacks, verbose=verbose, shuffle=False,
        )
        history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    seconds = time.perf_counter() - start
    ran = len(next(iter(history.values()), []))
    phase = PhaseResult(
        name=name, first_epoch=first_epoch, epochs=ran,
        learning_rate=float(learning_rate), seconds=seconds,
        trainable_blocks=list(unfrozen), trainable_params=trainable_params,
        best={k: (min(v) if k.endswith("loss") else max(v)) for k, v in history.items()},
    )
    return phase, history


def _merge(head, tuned, settings):
    (head, head_history), (tuned, tuned_history) = head, tuned
    keys = dict.fromkeys([*head_history, *tuned_history])
    history = {
        k: head_history.get(k, [None] * head.epochs) + tuned_history.get(k, [None] * tuned.epochs)
        for k in keys
    }
    return FineTuneResult(
        history=history, phases=[head, tuned], phase_boundary=head.epochs, settings=settings,
    )
