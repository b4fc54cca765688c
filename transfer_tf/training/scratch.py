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

from transfer_tf.core.seeding import seed_job
from transfer_tf.core.settings_base import fill, keywords_of
from transfer_tf.data.inputs import class_weight_for, training_data
from transfer_tf.model import distribute
from transfer_tf.model.freezing import all_layers, is_batchnorm
from transfer_tf.model.records import FineTuneResult
from transfer_tf.training.phases import FitOptions, Phase, run_phase
from transfer_tf.training.settings import ScratchSettings
from transfer_tf.training.two_phase import check_class_weight


@keywords_of(ScratchSettings)
def train_from_scratch(classifier, train_data, validation_data=None, *, settings=None, callbacks=(),
                       verbose="auto", strategy=None, **keywords):
    """Trains every layer of a classifier (usually built with `weights=None`).

    Args:
        classifier: `ImageClassifier`. Trained in place; afterwards its base
            is trainable.
        train_data: a batched `tf.data.Dataset` of `(images, labels)` or a
            tuple of arrays, as for `fine_tune`.
        validation_data: the same kinds, or `None`. Defaults to `None`.
        settings: `ScratchSettings` or `None`. All settings at once; the
            keywords below change single ones. Defaults to `None`.
        callbacks: list of `keras.callbacks.Callback`. Defaults to `()`.
        verbose: `"auto"`, 0, 1 or 2. Defaults to `"auto"`.
        strategy: `tf.distribute.Strategy` or `None`. As for `fine_tune`.
            Defaults to `None`: the classifier's own, if any.
        epochs: int. Defaults to `10`.
        learning_rate: float. Adam learning rate. Defaults to `1e-3`.
        bn_momentum: float or `None`. Momentum given to every
            BatchNormalization layer of the base before training; `None`
            keeps the backbone's own. Defaults to `0.9`.
        batch_size: int or `None`. For array inputs only. Defaults to `None`
            (32).
        class_weight: dict, `"balanced"` or `None`. Defaults to `None`.
        seed: int or `None`. Defaults to `None`.

    Returns:
        A `FineTuneResult` with one phase, `"from_scratch"`; it is also kept
        as `classifier.training_record`.

    Raises:
        ValueError: for a setting out of range or data of the wrong shape.
        TypeError: for an unknown keyword.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "vgg16", num_classes=2, image_size=32, weights=None)
        >>> x = np.random.uniform(0, 255, (8, 32, 32, 3))
        >>> result = train_from_scratch(clf, (x, np.arange(8) % 2), epochs=1,
        ...                             verbose=0)
        >>> result.phases[0].name
        'from_scratch'
    """
    s = fill({"s": ScratchSettings}, keywords, {"s": settings}, caller="train_from_scratch")["s"]
    check_class_weight(s.class_weight, classifier)
    strategy = distribute.strategy_for(classifier, strategy)
    seed_job(s.seed)
    train, validation = training_data(classifier, train_data, validation_data, s.batch_size, s.seed)
    distribute.check_same_order(strategy, {"train_data": train})
    options = FitOptions.for_classifier(
        classifier, callbacks=tuple(callbacks), verbose=verbose, strategy=strategy,
        class_weight=class_weight_for(s.class_weight, train, classifier))

    classifier.base.trainable = True
    for layer in all_layers(classifier.base):
        layer.trainable = True
        if s.bn_momentum is not None and is_batchnorm(layer):
            layer.momentum = s.bn_momentum
    blocks = classifier.backbone_spec.block_names if classifier.backbone_spec else ("base",)
    with distribute.scope(strategy):
        phase = Phase(
            "from_scratch", training_mode_model(classifier), train, validation, s.epochs, s.learning_rate,
            trainable_blocks=blocks,
            header=(f"From scratch: {s.epochs} epochs at learning rate {s.learning_rate:g}; training "
                    "every layer, BatchNorm in training mode"))
        result = FineTuneResult.merge([run_phase(phase, options, classifier)],
                                      {"method": "from_scratch", **s.to_dict()})
    classifier.training_record = result
    return result


def training_mode_model(classifier):
    """The classifier's own layers in a functional model that passes `training` on."""
    inputs = keras.Input((*classifier.image_size, 3), name="images")
    features = classifier.base(classifier.preprocessor(inputs))
    return keras.Model(inputs, classifier.head(features), name="from_scratch")
