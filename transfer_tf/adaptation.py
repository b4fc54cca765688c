"""Domain adaptation: a classifier trained on one domain made to work on another.

A labelled source domain, a target domain with the same classes but another
look (another camera, factory line, scanner), and few or no target labels.
Three methods, each keeping `fine_tune`'s rule for BatchNormalization unless
it says otherwise:

- `"adabn"` (Li et al., 2016): sets every BatchNormalization layer's moving
  mean and variance from the unlabelled target images. No weight changes;
  the only thing that changes is exactly what BatchNorm's statistics are.
  AdaBN assumes the model's statistics are the source's; `fine_tune` keeps
  the pretrained (ImageNet) ones, so given the source images, each layer
  instead maps the target's moments onto the source's before its own
  normalisation, and the head sees target features distributed as the
  source features it learned on (swapping in the target's statistics alone
  moved them and measured far below source-only). The images run through
  the base once per domain, layer by layer, everything in inference mode.
- `"dann"` (Ganin et al., 2016): a domain classifier on the pooled features,
  behind a gradient-reversal layer, trained jointly with the label loss on
  the source: the top blocks learn features that predict the label and hide
  the domain. The reversal weight ramps from 0 to `domain_weight` (default
  0.1: 1.0 destroyed the features on MNIST -> UCI digits) as in the paper.
  BatchNorm statistics stay fixed (inference mode, as in `fine_tune`).
- `"coral"` (Deep CORAL, Sun & Saenko, 2016): the label loss on the source
  plus the distance between the source and target pooled features'
  covariances. BatchNorm statistics stay fixed.

AdaBN composes with the other two: `adapt(..., method="dann")` then
`adapt(..., method="adabn")` with the same source and target.

`dann` and `coral` first train the head on the source (phase 1), then the
top `unfreeze_blocks` blocks and the head with the alignment loss (phase 2);
the frozen part below runs once per image (cached activations, both
domains). Target labels, where given (`target_labelled`), join the label
loss in phase 2. The domain classifier and the reversal layer live only in
the training model: the adapted classifier is an ordinary one, which
saves, loads with `safe_mode`, evaluates and exports like any other.
"""

import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from transfer_tf import distribute, feature_cache
from transfer_tf.checks import check_choice, check_int, check_number
from transfer_tf.choices import ADAPTATION_METHODS
from transfer_tf.freezing import all_layers, freeze_base, is_batchnorm, unfreeze_top_blocks
from transfer_tf.phases import FitOptions, run_phase
from transfer_tf.records import FineTuneResult, PhaseResult
from transfer_tf.settings import FineTuneSettings
from transfer_tf.inputs import (
    batch_size_for, check_batch_size_applies, class_weight_for, training_data, unlabelled_data,
)
from transfer_tf.training import check_settings_for, phase_of

METHODS = ADAPTATION_METHODS
# Measured on MNIST -> UCI digits (benchmarks/domain_adaptation.py): DANN at 1.0 fell to chance.
DEFAULT_DOMAIN_WEIGHT = {"dann": 0.1, "coral": 1.0}


@dataclasses.dataclass(frozen=True)
class AdaptSettings:
    """The settings of `adapt` beyond `FineTuneSettings`.

    Args:
        method: str. `"adabn"`, `"dann"` or `"coral"`.
        domain_weight: float or `None`. Weight of the alignment loss (DANN's
            final reversal weight, CORAL's loss weight); `None` for the
            method's default (`DEFAULT_DOMAIN_WEIGHT`). AdaBN has no
            alignment loss and takes none. Defaults to `None`.
        domain_hidden_units: int. Width of DANN's domain classifier.
            Defaults to `256`.
    """

    method: str = "adabn"
    domain_weight: float = None
    domain_hidden_units: int = 256

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        if self.method == "adabn" and self.domain_weight is not None:
            raise ValueError("method='adabn' trains no alignment loss, so it takes no domain_weight. "
                             f"Received: domain_weight={self.domain_weight!r}")
        if self.domain_weight is not None:
            check_number("domain_weight", self.domain_weight, above=0)
        check_int("domain_hidden_units", self.domain_hidden_units, minimum=1)

    @property
    def alignment_weight(self):
        """The weight of the alignment loss: `domain_weight`, or the method's default."""
        return DEFAULT_DOMAIN_WEIGHT.get(self.method) if self.domain_weight is None else self.domain_weight


def adapt(classifier, source_data, target_data, *, method="adabn", target_labelled=None,
          domain_weight=None, settings=None, callbacks=(), verbose="auto", strategy=None, **keywords):
    """Adapts a classifier from a labelled source domain to an unlabelled target domain.

    Args:
        classifier: `ImageClassifier`. For `"adabn"`, one already trained on
            the source (only its BatchNorm statistics change). For `"dann"`
            and `"coral"`, a pretrained one (e.g. ImageNet weights, or a
            source run): its head is trained on the source first.
        source_data: labelled source images: a batched `tf.data.Dataset` of
            `(images, labels)` or a tuple of arrays. `"adabn"` reads only
            their images (an array of images will do), to map the target's
            statistics onto theirs; pass `None` only when the model's
            BatchNorm statistics are already the source's (plain AdaBN).
        target_data: target images: a batched `tf.data.Dataset` of images or
            of `(images, labels)` (labels ignored), or an array of images.
        method: str. `"adabn"`, `"dann"` or `"coral"`. Defaults to `"adabn"`.
        target_labelled: labelled target images (the few-label variant), as
            `source_data`, or `None`. Their label loss joins the source's in
            phase 2 (`"dann"`, `"coral"`). Defaults to `None`.
        domain_weight: float or `None`. Weight of the alignment loss;
            `None` for the method's default (DANN 0.1, CORAL 1.0). Defaults
            to `None`.
        settings: `FineTuneSettings` or `None`; the keywords change single
            ones (`head_epochs`, `fine_tune_epochs`, `unfreeze_blocks`,
            `head_lr`, `fine_tune_lr`, `batch_size`, `seed`, ...).
        callbacks: list of `keras.callbacks.Callback`. Defaults to `()`.
        verbose: `"auto"`, 0, 1 or 2. Defaults to `"auto"`.
        strategy: `tf.distribute.Strategy` or `None`. As for `fine_tune`.
            Defaults to `None`: the classifier's own, if any.

    Returns:
        A `FineTuneResult` (phases and history; `settings` records the
        method). It is also kept as `classifier.training_record`.

    Raises:
        ValueError: for an unknown method or a setting out of range, a
            method needing source data without it, an option the method does
            not use, or images that do not fit the classifier.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "mobilenetv3small", num_classes=2, image_size=32, weights=None)
        >>> target = np.random.uniform(0, 255, (16, 32, 32, 3))
        >>> result = adapt(clf, None, target, method="adabn", verbose=0)
        >>> result.phases[0].name
        'adabn'
    """
    extra = AdaptSettings(method=method, domain_weight=domain_weight)
    s = FineTuneSettings(**keywords) if settings is None else settings.replace(**keywords)
    if method != "adabn" and source_data is None:
        raise ValueError(f"method={method!r} trains on labelled source images: pass source_data.")
    if method == "adabn" and target_labelled is not None:
        raise ValueError("method='adabn' trains nothing, so it cannot use target labels; use 'dann' or "
                         "'coral' for the few-label variant. Received: target_labelled=<data>")
    check_batch_size_applies(s.batch_size, source_data=source_data, target_data=target_data,
                             target_labelled=target_labelled)
    strategy = distribute.strategy_for(classifier, strategy)
    with distribute.scope(strategy):
        if method == "adabn":
            result = _adabn(classifier, source_data, target_data, s, verbose)
        else:
            result = _align(classifier, source_data, target_data, target_labelled, s, extra,
                            callbacks, verbose, strategy)
    result.settings = {"method": method, "domain_weight": extra.alignment_weight,
                       "target_labelled": target_labelled is not None, **s.to_dict()}
    classifier.training_record = result
    return result


# -- AdaBN ---------------------------------------------------------------------------------------


def _adabn(classifier, source_data, target_data, settings, verbose):
    def progress(name):
        if verbose:
            print(f"AdaBN: BatchNorm statistics of the {name} images ...")
        return keras.utils.Progbar(None, unit_name="batch") if verbose else None

    source = None
    if source_data is not None:
        images = unlabelled_data(source_data, classifier, settings.batch_size, settings.seed)
        source = batchnorm_statistics(classifier, images.map(lambda x, y: x), progress=progress("source"))
    target = unlabelled_data(target_data, classifier, settings.batch_size, settings.seed)
    seconds, batches = reestimate_batchnorm(classifier, target.map(lambda x, y: x), source=source,
                                            progress=progress("target"))
    return FineTuneResult(history={}, phases=[_record("adabn", batches, seconds)], phase_boundary=0,
                          settings={})


def batchnorm_statistics(classifier, images, *, progress=None):
    """The mean and variance of every BatchNorm layer's input over `images`, the model unchanged.

    Args:
        classifier: `ImageClassifier`.
        images: batched `tf.data.Dataset` of raw images.
        progress: `keras.utils.Progbar` or `None`.

    Returns:
        A dict from layer name to `(mean, variance)` numpy arrays (over all
        the images together), for `reestimate_batchnorm(source=...)`.

    Raises:
        ValueError: if the base has no BatchNormalization layer or `images`
            holds no image.
    """
    moments = {}

    def measure(layer, inputs):
        moments.setdefault(layer.name, []).append(_moments(layer, inputs))
        return None  # the model's own statistics, unchanged

    batches = _run_with_statistics(classifier, images, _batchnorm_layers(classifier), measure, progress)
    if batches == 0:
        raise ValueError("source_data holds no images.")
    return {name: _pooled(batch_moments) for name, batch_moments in moments.items()}


def reestimate_batchnorm(classifier, images, *, source=None, progress=None):
    """Sets every BatchNorm layer's moving statistics so that `images` look like the source to it.

    AdaBN (Li et al., 2016): every layer normalises the target images with the
    target's own statistics. When the model's statistics are not the
    source's (`fine_tune` keeps the pretrained ones frozen), `source` gives
    the source's, and each layer maps the target's moments onto the
    source's before its own normalisation: the head sees target features
    distributed as the source features it was trained on. Without `source`
    the model's own statistics stand for the source's (plain AdaBN). Layer
    by layer, from the input up, so each layer's statistics are those of the
    adapted layers below it.

    Only the moving means and variances change; every other weight, and every
    layer's `trainable` flag, are as they were afterwards.

    Args:
        classifier: `ImageClassifier`.
        images: batched `tf.data.Dataset` of raw target images.
        source: dict from `batchnorm_statistics` on the source images, or
            `None` when the model's own statistics are the source's.
            Defaults to `None`.
        progress: `keras.utils.Progbar` or `None`.

    Returns:
        `(seconds, batches)`.

    Raises:
        ValueError: if the base has no BatchNormalization layer, `source`
            lacks one of them, or `images` holds no image.
    """
    layers = _batchnorm_layers(classifier)
    model_stats = {layer.name: (layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers}
    source = model_stats if source is None else source
    missing = sorted(set(model_stats) - set(source))
    if missing:
        raise ValueError(f"source holds no statistics for the BatchNorm layers {missing[:3]}: measure them "
                         "with batchnorm_statistics on this classifier.")
    target = {}

    def mapped(layer, mean, variance):
        """The moving statistics that map moments (mean, variance) onto the source's."""
        (model_mean, model_variance), (source_mean, source_variance) = model_stats[layer.name], source[layer.name]
        eps = layer.epsilon
        ratio = np.sqrt(variance / np.maximum(source_variance, 1e-12))  # target sigma / source sigma
        return (mean - (source_mean - model_mean) * ratio,
                np.maximum((model_variance + eps) * ratio ** 2 - eps, 0.0))

    def adapt_batch(layer, inputs):
        target.setdefault(layer.name, []).append(_moments(layer, inputs))
        return mapped(layer, *target[layer.name][-1][:2])

    start = time.perf_counter()
    try:
        batches = _run_with_statistics(classifier, images, layers, adapt_batch, progress)
    finally:
        for layer in layers:
            layer.moving_mean.assign(model_stats[layer.name][0])
            layer.moving_variance.assign(model_stats[layer.name][1])
    if batches == 0:
        raise ValueError("target_data holds no images.")
    for layer in layers:
        mean, variance = mapped(layer, *_pooled(target[layer.name]))
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
    return time.perf_counter() - start, batches


def _batchnorm_layers(classifier):
    layers = [layer for layer in all_layers(classifier.base) if is_batchnorm(layer)]
    if not layers:
        raise ValueError("The classifier's base has no BatchNormalization layer: AdaBN does nothing.")
    return layers


def _moments(layer, inputs):
    """`(mean, variance, count)` of a batch per channel of the layer's axis."""
    rank = len(inputs.shape)
    axes = [axis for axis in range(rank) if axis != layer.axis % rank]
    mean, variance = ops.moments(ops.cast(inputs, "float32"), axes=axes)
    return mean.numpy(), variance.numpy(), int(np.prod([inputs.shape[axis] for axis in axes]))


def _pooled(batch_moments):
    """The mean and variance over all batches together (the law of total variance)."""
    means, variances, counts = (np.asarray(values, np.float64) for values in zip(*batch_moments))
    weights = counts[:, None] / counts.sum()
    mean = (weights * means).sum(axis=0)
    return mean, np.maximum((weights * (variances + means ** 2)).sum(axis=0) - mean ** 2, 0.0)


def _run_with_statistics(classifier, images, layers, statistics, progress):
    """Runs the base in inference mode over `images`; each BatchNorm layer first hands its input
    to `statistics(layer, inputs)`, which returns the moving statistics to normalise it with
    (`None`: the layer's own)."""
    def patched(layer, call):
        def call_with(inputs, training=None, mask=None):
            replaced = statistics(layer, inputs)
            if replaced is not None:
                layer.moving_mean.assign(replaced[0])
                layer.moving_variance.assign(replaced[1])
            return call(inputs, training=False, mask=mask)
        return call_with

    batches = 0
    try:
        for layer in layers:  # an instance attribute shadows the class's call; Keras's tracking bypassed
            object.__setattr__(layer, "call", patched(layer, layer.call))
        for batches, batch in enumerate(images, start=1):
            classifier.base(classifier.preprocessor(batch), training=False)
            if progress is not None:
                progress.update(batches)
    finally:
        for layer in layers:
            if "call" in vars(layer):
                object.__delattr__(layer, "call")
    return batches


# -- DANN and CORAL -------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="transfer_tf")
class GradientReversal(keras.layers.Layer):
    """Identity forward; multiplies the gradient by `-weight` backward (Ganin et al., 2016).

    Args:
        weight: float. The reversal weight; `set_weight` changes it while
            training (a variable, so a compiled step sees the new value).
    """

    def __init__(self, weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = keras.Variable(float(weight), trainable=False, name="reversal_weight")

    def set_weight(self, value):
        self.weight.assign(float(value))

    def call(self, inputs):
        weight = ops.convert_to_tensor(self.weight)

        @tf.custom_gradient
        def reverse(x):
            return tf.identity(x), lambda upstream: -weight * upstream

        return reverse(inputs)


def coral_loss(source, target):
    """Deep CORAL: the squared Frobenius distance of the feature covariances, over 4 d.

    The paper divides by 4 d^2 for d = 31 class scores; on d = 1,280 pooled
    features that made the loss vanish next to the label loss (weight 10:
    no effect on MNIST -> UCI digits), so it is divided by 4 d.

    Args:
        source: tensor `(n_s, d)`.
        target: tensor `(n_t, d)`.

    Returns:
        A scalar tensor, 0 when both covariances are equal.
    """
    def covariance(x):
        x = ops.cast(x, "float32")
        n = ops.cast(ops.shape(x)[0], "float32")
        centred = x - ops.mean(x, axis=0, keepdims=True)
        return ops.matmul(ops.transpose(centred), centred) / ops.maximum(n - 1.0, 1.0)

    d = ops.cast(ops.shape(source)[-1], "float32")
    return ops.sum(ops.square(covariance(source) - covariance(target))) / (4.0 * d)


class AlignmentTrainer(keras.Model):
    """The classifier's trainable part with an alignment loss, for `fit`.

    `fit` feeds it `((source_inputs, target_inputs), source_labels)`. The
    label loss is the compiled loss on the source; DANN adds a domain
    classifier's loss through the reversal layer, CORAL the covariance
    distance of the pooled features. Not saved: the adapted classifier is
    the `features` and `head` it trains.
    """

    def __init__(self, features, head, method, domain_weight, hidden_units, **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.head = head
        self.method = method
        self.domain_weight = domain_weight
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.reversal = GradientReversal(0.0)
        if method == "dann":
            self.domain = keras.Sequential([
                keras.layers.Dense(hidden_units, activation="relu"),
                keras.layers.Dense(hidden_units, activation="relu"),
                keras.layers.Dense(1),
            ], name="domain_classifier")
        self.alignment_tracker = keras.metrics.Mean(name="alignment_loss")

    def call(self, inputs, training=None):
        source = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        return self.head(self.features(source, training=False), training=training)

    def alignment(self, source_maps, target_maps):
        source, target = self.pool(source_maps), self.pool(target_maps)
        if self.method == "coral":
            return self.domain_weight * coral_loss(source, target)
        pooled = ops.concatenate([source, target], axis=0)
        domains = ops.concatenate([ops.zeros((ops.shape(source)[0], 1)),
                                   ops.ones((ops.shape(target)[0], 1))], axis=0)
        logits = self.domain(self.reversal(pooled), training=True)
        return ops.mean(keras.losses.binary_crossentropy(domains, logits, from_logits=True))

    def train_step(self, data):
        (source, target), labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            source_maps = self.features(source, training=False)
            predictions = self.head(source_maps, training=True)
            # Keras scales its compiled loss for the replicas; the alignment is scaled alike.
            label_loss = self.compute_loss(x=source, y=labels, y_pred=predictions,
                                           sample_weight=sample_weight)
            alignment = self.alignment(source_maps, self.features(target, training=False))
            loss = self.optimizer.scale_loss(label_loss + distribute.replica_share(alignment))
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        for metric in self.metrics:
            if metric is self.alignment_tracker:
                metric.update_state(alignment)
            elif metric.name == "loss":
                metric.update_state(distribute.whole_loss(label_loss))
            else:
                metric.update_state(labels, predictions, sample_weight=sample_weight)
        return self.get_metrics_result()


class DannSchedule(keras.callbacks.Callback):
    """Ramps the reversal weight from 0 to `weight`: `weight * (2 / (1 + exp(-10 p)) - 1)`."""

    def __init__(self, trainer, weight, total_steps):
        super().__init__()
        self.trainer, self.weight, self.total = trainer, weight, max(total_steps, 1)
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        progress = min(self.step / self.total, 1.0)
        self.trainer.reversal.set_weight(self.weight * (2.0 / (1.0 + math.exp(-10 * progress)) - 1.0))
        self.step += 1


def _align(classifier, source_data, target_data, target_labelled, s, extra, callbacks, verbose, strategy):
    check_settings_for(classifier, s, None)
    if s.unfreeze_blocks == 0:
        raise ValueError(
            f"method={extra.method!r} aligns the features of the unfrozen blocks; with "
            "unfreeze_blocks=0 no feature can move. Use unfreeze_blocks >= 1 (or 'all'). "
            "Received: unfreeze_blocks=0")
    if s.seed is not None:
        keras.utils.set_random_seed(s.seed)
    source = training_data(classifier, source_data, None, batch_size_for(source_data, s.batch_size),
                           s.seed)[0]
    target = unlabelled_data(target_data, classifier, s.batch_size, s.seed)
    labelled = None if target_labelled is None else training_data(
        classifier, target_labelled, None, batch_size_for(target_labelled, s.batch_size), s.seed)[0]
    distribute.check_same_order(strategy, {"source_data": source, "target_data": target,
                                           "target_labelled": labelled})
    options = FitOptions.for_classifier(
        classifier, label_smoothing=s.label_smoothing, callbacks=tuple(callbacks),
        class_weight=class_weight_for(s.class_weight, source, classifier), verbose=verbose,
        strategy=strategy)

    freeze_base(classifier)
    cache, report = feature_cache.start(
        classifier, {"train": source, "target": target, "labelled": labelled},
        s.unfreeze_blocks if s.fine_tune_epochs else 0, s.feature_cache, verbose=verbose != 0)
    head = run_phase(phase_of(classifier, "head", cache.head_phase(), (), s.head_epochs, s.head_lr),
                     options, classifier)
    unfrozen = unfreeze_top_blocks(classifier, s.unfreeze_blocks, train_bn=s.train_bn)
    trainer = AlignmentTrainer(cache.feature_maps(), classifier.head, extra.method, extra.alignment_weight,
                               extra.domain_hidden_units, name=f"{extra.method}_trainer")
    source_inputs = cache.inputs("train")
    if labelled is not None:  # the few-label variant: target labels join the label loss
        source_inputs = source_inputs.concatenate(cache.inputs("labelled"))
    target_inputs = cache.inputs("target").map(lambda x, y: x).repeat()
    if extra.method == "dann":
        steps = int(source_inputs.cardinality()) * s.fine_tune_epochs
        options = dataclasses.replace(options, callbacks=(
            *options.callbacks, DannSchedule(trainer, extra.alignment_weight, steps)))
    note = "source and target images" if cache.inputs("train") is source else (
        f"source and target activations cached below {cache.cut}")
    paired = tf.data.Dataset.zip((source_inputs, target_inputs)).map(
        lambda source, target: ((source[0], target), source[1]))
    data = feature_cache.PhaseData(trainer, paired, None, note)
    tuned = run_phase(phase_of(classifier, extra.method, data, unfrozen, s.fine_tune_epochs,
                               s.fine_tune_learning_rate, head[0].end_epoch), options, classifier)
    if report.used:
        report.phases.append(extra.method)
    return FineTuneResult.merge([head, tuned], {}, cache=dataclasses.asdict(report))


def _record(name, batches, seconds):
    return PhaseResult(name=name, first_epoch=0, epochs=1 if batches else 0, learning_rate=0.0,
                       seconds=seconds, trainable_blocks=[], trainable_params=0, best={})
