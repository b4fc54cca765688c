"""`train_from_scratch`: the whole network trains, BatchNorm in training mode.

This is the baseline transfer learning is measured against, and the way to
pretrain a base on a source domain of your own. It is not `fine_tune`: every
layer trains and BatchNormalization updates its moving statistics, so the
model runs through a functional wrapper that passes Keras's `training` flag
to the base (an `ImageClassifier` always calls its base in inference mode).

keras.applications builds the BatchNormalization layers of MobileNet and
EfficientNet with `momentum=0.999`. Trained from scratch for a few hundred
steps, their moving statistics barely leave their initial values and the
model is near chance in inference mode however well it trains. So the
momentum is lowered (to `0.9` by default) before training.
"""

import keras

from transfer_tf.freezing import all_layers, is_batchnorm
from transfer_tf.training import (
    FineTuneResult, _as_dataset, _class_weight, _plain_class_weight, _run_phase,
)


def train_from_scratch(
    classifier,
    train_data,
    validation_data=None,
    *,
    epochs=10,
    learning_rate=1e-3,
    bn_momentum=0.9,
    batch_size=None,
    callbacks=(),
    class_weight=None,
    seed=None,
    verbose="auto",
):
    """Trains every layer of a classifier (usually built with `weights=None`).

    Args:
        classifier: `ImageClassifier`. Trained in place; afterwards its base
            is trainable.
        train_data: a batched `tf.data.Dataset` of `(images, labels)` or a
            tuple of arrays, as for `fine_tune`.
        validation_data: the same kinds, or `None`. Defaults to `None`.
        epochs: int. Defaults to `10`.
        learning_rate: float. Adam learning rate. Defaults to `1e-3`.
        bn_momentum: float or `None`. Momentum given to every
            BatchNormalization layer of the base before training; `None`
            keeps the backbone's own. Defaults to `0.9`.
        batch_size: int or `None`. For array inputs only. Defaults to `None`
            (32).
        callbacks: list of `keras.callbacks.Callback`. Defaults to `()`.
        class_weight: dict, `"balanced"` or `None`. Defaults to `None`.
        seed: int or `None`. Defaults to `None`.
        verbose: `"auto"`, 0, 1 or 2. Defaults to `"auto"`.

    Returns:
        A `FineTuneResult` with one phase, `"from_scratch"`; it is also kept
        as `classifier.training_record`.

    Raises:
        ValueError: for an argument out of range or data of the wrong shape.

    Example:

    >>> clf = ImageClassifier.from_backbone(
    ...     "vgg16", num_classes=2, image_size=32, weights=None)
    >>> x = np.random.uniform(0, 255, (8, 32, 32, 3))
    >>> result = train_from_scratch(clf, (x, np.arange(8) % 2), epochs=1,
    ...                             verbose=0)
    >>> result.phases[0].name
    'from_scratch'
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0. Received: epochs={epochs!r}")
    if not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a number > 0. Received: learning_rate={learning_rate!r}")
    if bn_momentum is not None and not 0 < bn_momentum < 1:
        raise ValueError(f"bn_momentum must be in (0, 1) or None. Received: bn_momentum={bn_momentum!r}")
    settings = dict(
        method="from_scratch", epochs=epochs, learning_rate=learning_rate,
        bn_momentum=bn_momentum, batch_size=batch_size,
        class_weight=_plain_class_weight(class_weight), seed=seed,
    )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    train = _as_dataset(train_data, classifier, batch_size, "train_data", shuffle=True, seed=seed)
    validation = None if validation_data is None else _as_dataset(
        validation_data, classifier, batch_size, "validation_data", shuffle=False)
    weights = _class_weight(settings["class_weight"], train, classifier)

    classifier.base.trainable = True
    for layer in all_layers(classifier.base):
        layer.trainable = True
        if bn_momentum is not None and is_batchnorm(layer):
            layer.momentum = bn_momentum
    phase, history = _run_phase(
        classifier, "from_scratch", classifier.backbone_spec.block_names
        if classifier.backbone_spec else ["base"], epochs, learning_rate, 0,
        train=train, validation=validation, class_weight=weights,
        callbacks=list(callbacks), patience=None, verbose=verbose,
        label_smoothing=0.0, one_hot=False, model=_training_mode_model(classifier),
        header=_header,
    )
    result = FineTuneResult(history=history, phases=[phase], phase_boundary=phase.epochs, settings=settings)
    classifier.training_record = result
    return result


def _training_mode_model(classifier):
    """The classifier's own layers in a functional model that passes `training` on."""
    inputs = keras.Input((*classifier.image_size, 3), name="images")
    features = classifier.base(classifier.preprocessor(inputs))
    return keras.Model(inputs, classifier.head(features), name="from_scratch")


def _header(classifier, name, unfrozen, epochs, learning_rate, trainable_params, note=""):
    return (
        f"From scratch: {epochs} epochs at learning rate {learning_rate:g}; training every "
        f"layer, BatchNorm in training mode ({trainable_params:,} parameters)."
    )
