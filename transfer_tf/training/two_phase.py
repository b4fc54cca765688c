"""`fine_tune`: the two-phase transfer-learning recipe.

Phase 1 trains the head on a frozen base. Phase 2 unfreezes the top blocks of
the base and continues at a lower learning rate, BatchNormalization kept in
inference mode. Changing `trainable` needs a fresh `compile()` in Keras, so
the phases are two explicit `fit` calls (`phases.run_phase` compiles each).
"""

import contextlib
import dataclasses

from transfer_tf.backbones.blocks import block_layers, block_map
from transfer_tf.core.seeding import seed_job
from transfer_tf.core.settings_base import fill, keywords_of
from transfer_tf.data.inputs import class_weight_for, training_data
from transfer_tf.data.pipeline import recipe_of
from transfer_tf.model import distribute
from transfer_tf.model.freezing import (
    all_layers,
    blocks_to_unfreeze,
    freeze_base,
    is_batchnorm,
    unfreeze_top_blocks,
)
from transfer_tf.model.records import FineTuneResult, HeldOutOutputs
from transfer_tf.training import feature_cache, lr_finder
from transfer_tf.training.backup import PhaseBackup
from transfer_tf.training.phases import FitOptions, Phase, run_phase
from transfer_tf.training.schedules import block_rates
from transfer_tf.training.settings import FineTuneSettings


@keywords_of(FineTuneSettings)
def fine_tune(classifier, train_data, validation_data=None, *, settings=None, callbacks=(),
              verbose="auto", backup_dir=None, strategy=None, **keywords):
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
        backup_dir: str, path or `None`. Backs the run up there after every
            epoch; calling `fine_tune` again with the same folder (after a
            kill, say) skips the finished phases and continues the
            interrupted one from its last epoch, with its optimizer state
            and the same batch order (see `backup`). A folder of a run with
            other settings is refused. Under several workers the chief
            writes it and every worker reads it, so it must be on storage
            they share. Defaults to `None`.
        strategy: `tf.distribute.Strategy` or `None`. Trains under it: both
            phases compile and fit in its scope, the datasets (cached ones
            too) sharded by element; batch sizes are global. The classifier
            must have been built in its scope (`from_backbone(...,
            strategy=...)`). Defaults to `None`: the strategy the classifier
            was built in, if any.
        head_epochs: int. Epochs of phase 1. Defaults to `5`.
        fine_tune_epochs: int. Epochs of phase 2. Defaults to `5`.
        unfreeze_blocks: int, `"all"` or a name. Blocks of the base, counted
            from the output, that train in phase 2; `0` trains the head only
            (feature extraction), `"all"` the whole base. A block's name
            trains it and those above it; a unit of the last block (ResNet's
            `"conv5_block3"`, EfficientNet's `"block7a"`, VGG's
            `"block5_conv3"`; see `blocks.unit_blocks`) trains less than the
            whole block, for a faster phase 2. Defaults to `1`.
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

    Examples:

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
    strategy = distribute.strategy_for(classifier, strategy)
    seed_job(s.seed)
    train, validation = training_data(classifier, train_data, validation_data, s.batch_size, s.seed)
    distribute.check_same_order(strategy, {"train_data": train})
    options = FitOptions.for_classifier(
        classifier, label_smoothing=s.label_smoothing, callbacks=tuple(callbacks),
        class_weight=class_weight_for(s.class_weight, train, classifier),
        patience=s.early_stopping_patience, verbose=verbose, jit_compile=s.jit_compile, strategy=strategy)

    backup = None if backup_dir is None else PhaseBackup(
        backup_dir, run_signature(classifier, s, train, validation), strategy=strategy)
    with distribute.scope(strategy), backup or contextlib.nullcontext():
        freeze_base(classifier)
        cache, report = feature_cache.start(classifier, {"train": train, "validation": validation},
                                            s.unfreeze_blocks if s.fine_tune_epochs else 0,
                                            s.feature_cache, verbose=verbose != 0)
        found = {}
        data = cache.head_phase()
        head_lr = found_rate("head", data, s.head_lr, s.head_epochs, options, classifier, found, backup)
        head = run_phase(phase_of(classifier, "head", data, (), s.head_epochs, head_lr, s.head_schedule),
                         options, classifier, backup)
        unfrozen = unfreeze_top_blocks(classifier, s.unfreeze_blocks, train_bn=s.train_bn)
        data = cache.fine_tune_phase(unfrozen)
        rate = s.fine_tune_learning_rate
        if rate == "find" and s.fine_tune_lr is None:  # head_lr="find": a hundredth of what it found
            rate = head_lr / 100
        rate = found_rate("fine_tune", data, rate, s.fine_tune_epochs, options, classifier, found, backup)
        tuned = run_phase(phase_of(classifier, "fine_tune", data, unfrozen, s.fine_tune_epochs, rate,
                                   s.fine_tune_schedule, head[0].end_epoch,
                                   rates=s.fine_tune_lr if isinstance(s.fine_tune_lr, tuple) else None),
                          options, classifier, backup)
        outputs = cache.head_outputs("validation", base_trained=bool(unfrozen) and s.fine_tune_epochs > 0)

    settings = {**s.to_dict(), **({"found_learning_rates": found} if found else {})}
    result = FineTuneResult.merge([head, tuned], settings, cache=dataclasses.asdict(report))
    if outputs is not None:
        result.validation_outputs = HeldOutOutputs(recipe_of(validation).fingerprint(), outputs)
    classifier.training_record = result
    return result


def run_signature(classifier, settings, train, validation):
    """What a resumed run must share with the interrupted one: model, settings, data."""
    fingerprints = {name: (None if recipe_of(data) is None else recipe_of(data).fingerprint())
                    for name, data in (("train", train), ("validation", validation)) if data is not None}
    return {"backbone": classifier.backbone_name, "image_size": list(classifier.image_size),
            "class_names": classifier.class_names, "weights": classifier.weights_source,
            "settings": settings.to_dict(), "data": fingerprints}


def found_rate(name, data, rate, epochs, options, classifier, found, backup):
    """`rate`, or with `"find"` the learning-rate finder's valley on the phase's model and data."""
    if rate != "find" or epochs == 0:
        return 1e-3 if rate == "find" else rate
    done = None if backup is None else backup.finished(name)
    if done is not None:  # a resumed run: the phase ran with the rate it found then
        found[name] = done[0].learning_rate
        return found[name]
    model = data.model if data.model is not classifier else lr_finder.wrapper(classifier)
    sweep = lr_finder.sweep(model, data.train, options, phase=name)
    found[name] = sweep.suggestions["valley"]
    if options.verbose != 0:
        print(f"Learning-rate finder ({name}): valley {found[name]:.2g} "
              f"(minimum {sweep.suggestions['minimum']:.2g}, steep {sweep.suggestions['steep']:.2g}).")
    return found[name]


def phase_of(classifier, name, data, unfrozen, epochs, learning_rate, schedule="constant", first_epoch=0,
             rates=None):
    """A `Phase` of `fine_tune` on what the cache gave it, with its header line.

    `rates`: `(low, high)` spreads phase 2's rates over the unfrozen blocks.
    """
    what = "head only, base frozen" if not unfrozen else f"blocks {', '.join(unfrozen)} + head"
    if unfrozen and any(map(is_batchnorm, all_layers(classifier.base))):
        what += ", BatchNorm in inference mode"
    if data.note:
        what += f"; on {data.note}"
    number = 1 if name == "head" else 2
    rate = f"{learning_rate:g}"
    multipliers = None
    if rates is not None and unfrozen and classifier.backbone_spec is not None:
        per_block = block_rates(list(unfrozen), *rates)
        rate = ", ".join(f"{block} {value:.2g}" for block, value in per_block.items()) + f", head {rates[1]:g}"
        spec = classifier.backbone_spec
        groups = block_layers(classifier.base, spec, block_map(classifier.base, spec, unfrozen[0]))
        multipliers = {id(w): per_block[block] / rates[1] for block in per_block
                       for layer in groups[block] for w in layer.trainable_weights}
    if schedule != "constant":
        rate += f" ({schedule} schedule)"
    header = f"Phase {number}/2 ({name}): {epochs} epochs at learning rate {rate}; training {what}"
    return Phase(name, data.model, data.train, data.validation, epochs, learning_rate,
                 first_epoch=first_epoch, trainable_blocks=tuple(unfrozen), header=header,
                 schedule=schedule, multipliers=multipliers)


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
