"""AdaBN (Li et al., 2016): BatchNorm statistics measured on one domain's images and re-estimated on another's.

See `adaptation` for when each method applies. Everything here runs in
inference mode and changes no weight: only the moving statistics.
"""

import time

import keras
import numpy as np
from keras import ops

from transfer_tf.data.inputs import (
    unlabelled_data,
)
from transfer_tf.model.freezing import all_layers, is_batchnorm
from transfer_tf.model.records import FineTuneResult, PhaseResult


def adapt_batchnorm(classifier, source_data, target_data, settings, verbose):
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
    return FineTuneResult(history={}, phases=[_phase_record("adabn", batches, seconds)], phase_boundary=0,
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
        if progress is not None:  # a bar of unknown length ends its line only when told
            progress.update(batches, finalize=True)
    return batches


def _phase_record(name, batches, seconds):
    return PhaseResult(name=name, first_epoch=0, epochs=1 if batches else 0, learning_rate=0.0,
                       seconds=seconds, trainable_blocks=[], trainable_params=0, best={})
