"""DANN and Deep CORAL: the top blocks trained to align the source and target domains' features.

See `adaptation` for the methods. The domain classifier and the reversal
layer live only in the training model (`AlignmentTrainer`).
"""

import dataclasses
import math

import keras
import tensorflow as tf
from keras import ops

from transfer_tf.core.seeding import seed_job
from transfer_tf.data.inputs import (
    batch_size_for,
    class_weight_for,
    training_data,
    unlabelled_data,
)
from transfer_tf.model import distribute
from transfer_tf.model.freezing import freeze_base, unfreeze_top_blocks
from transfer_tf.model.records import FineTuneResult
from transfer_tf.training import feature_cache
from transfer_tf.training.phases import FitOptions, run_phase
from transfer_tf.training.two_phase import check_settings_for, phase_of


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
            # Built now, so its weights are there when the optimizer is built before `fit`.
            self.domain.build((None, features.output_shape[-1]))
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


def align(classifier, source_data, target_data, target_labelled, s, extra, callbacks, verbose, strategy):
    check_settings_for(classifier, s, None)
    if s.unfreeze_blocks == 0:
        raise ValueError(
            f"method={extra.method!r} aligns the features of the unfrozen blocks; with "
            "unfreeze_blocks=0 no feature can move. Use unfreeze_blocks >= 1 (or 'all'). "
            "Received: unfreeze_blocks=0")
    seed_job(s.seed)
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
