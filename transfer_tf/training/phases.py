"""A training phase as a value, and the one way to run it.

Every trainer is a sequence of phases: `fine_tune` runs the head phase and
the fine-tuning phase, `train_from_scratch` one phase. A `Phase` says what
trains (the model `fit` runs: the classifier, or the part of it that the
feature cache lets run alone), at what rate, for how long and on which data;
`FitOptions` holds what all phases of a run share (the loss for the task,
class weights, callbacks, early stopping, output). `run_phase` compiles,
fits and reports, and leaves the classifier compiled with the phase's
optimizer and loss whichever model it fitted.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.model import distribute
from transfer_tf.model.precision import compute_dtypes
from transfer_tf.model.records import PhaseResult
from transfer_tf.training.schedules import DiscriminativeAdam, learning_rate


@dataclasses.dataclass
class Phase:
    """One `fit` of a training run.

    Attributes:
        name: str. `"head"`, `"fine_tune"`, `"from_scratch"`, ...
        model: `keras.Model`. What `fit` runs: the classifier or a part of it
            sharing its layers (the head on cached features, ...).
        train: `tf.data.Dataset` of batches for that model.
        validation: `tf.data.Dataset` or `None`.
        epochs: int. Epochs to run.
        learning_rate: float. Adam's learning rate.
        first_epoch: int. The run's epoch number of the phase's first epoch.
        trainable_blocks: tuple of str. Blocks of the base that train.
        header: str. The line printed before the phase (with its parameter
            count appended).
        compile: callable or `None`. `compile(model, learning_rate)` for a
            model with a loss of its own (pretraining); `None` compiles it
            for the classification task of the run's `FitOptions`.
        schedule: str. `"constant"`, `"cosine"` or `"one_cycle"`, peaking
            at `learning_rate`.
        multipliers: dict or `None`. `id(variable)` to the factor of its
            rate (discriminative rates); others get 1.
    """

    name: str
    model: object
    train: object
    validation: object
    epochs: int
    learning_rate: float
    first_epoch: int = 0
    trainable_blocks: tuple = ()
    header: str = ""
    compile: object = None
    schedule: str = "constant"
    multipliers: dict = None


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """What every phase of one run shares.

    Attributes:
        task: str or `None`. The classifier's task (chooses loss and
            accuracy); `None` for phases that compile their own loss.
        num_classes: int.
        label_smoothing: float. `> 0` trains a multiclass head on one-hot
            labels.
        class_weight: dict or `None`. Weight per class index.
        callbacks: tuple of `keras.callbacks.Callback`.
        patience: int or `None`. Early stopping on validation loss, per phase.
        verbose: `"auto"`, 0, 1 or 2.
        jit_compile: bool.
        loss_scaling: bool. Wrap the optimizer in `LossScaleOptimizer`
            (mixed_float16).
        strategy: `tf.distribute.Strategy` or `None`. Every phase compiles
            and fits in its scope, on datasets sharded for it.
    """

    task: str = None
    num_classes: int = 0
    label_smoothing: float = 0.0
    class_weight: dict = None
    callbacks: tuple = ()
    patience: int = None
    verbose: object = "auto"
    jit_compile: bool = False
    loss_scaling: bool = False
    strategy: object = None

    @classmethod
    def for_classifier(cls, classifier, **options):
        """Options for training `classifier` (its task, classes and compute dtypes)."""
        return cls(task=classifier.task, num_classes=classifier.num_classes,
                   loss_scaling="float16" in compute_dtypes(classifier), **options)

    @property
    def one_hot(self):
        return self.task == "multiclass" and self.label_smoothing > 0

    def prepare(self, dataset):
        """The dataset as the loss wants its labels (one-hot with label smoothing)."""
        if dataset is None or not self.one_hot:
            return dataset
        return dataset.map(lambda x, y, *rest: (
            x, tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), self.num_classes), *rest))

    def compile(self, model, learning_rate, optimizer=None, multipliers=None):
        """Compiles `model` for the task with Adam at `learning_rate` (or the given optimizer).

        `learning_rate` may be a schedule; `multipliers` (`id(variable)` to a
        factor) gives variables rates of their own.
        """
        if self.task == "multiclass":
            if self.one_hot:
                loss = keras.losses.CategoricalCrossentropy(label_smoothing=self.label_smoothing)
                accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
            else:
                loss = keras.losses.SparseCategoricalCrossentropy()
                accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        else:
            loss = keras.losses.BinaryCrossentropy(label_smoothing=self.label_smoothing)
            accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate) if not multipliers else DiscriminativeAdam(
                lambda variable: multipliers.get(id(variable), 1.0), learning_rate=learning_rate)
            if self.loss_scaling:
                # Keras adds loss scaling only to a model whose own policy is
                # mixed_float16; the head or top blocks fitted alone may not be one.
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy], jit_compile=self.jit_compile)


def build_optimizer(model):
    """Creates the compiled optimizer's variables now, before `fit` traces its first step.

    Keras creates them inside that trace when no strategy is set, and a
    first call that creates variables makes TensorFlow trace the whole
    training step twice: a MobileNetV3Small `fit` of 64 images took 24.6 s
    instead of 10.3 s on a 2-core AVX2 CPU (`benchmarks/first_trace.py`).
    The variables and the training are the same either way.
    """
    # So a model fitted in a phase must have all its weights before `fit`: the
    # trainers build their layers when they are made (Keras's error names a late one).
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def trainable_parameters(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def run_phase(phase, options, classifier=None, backup=None):
    """Compiles `phase.model`, fits it, and returns what happened.

    Args:
        phase: `Phase`.
        options: `FitOptions`.
        classifier: `ImageClassifier` or `None`. Left compiled with the
            phase's optimizer and loss, as if it had been fitted itself.
        backup: `backup.PhaseBackup` or `None`. A finished phase is then
            skipped (its end weights loaded), an interrupted one continued
            from its last epoch, and the phase's end recorded.

    Returns:
        `(PhaseResult, history)`: the record and the per-epoch metrics.
    """
    if backup is not None:
        done = backup.finished(phase.name)
        if done is not None:
            backup.restore_phase(phase.name, classifier or phase.model)
            return done
    batches = int(phase.train.cardinality()) if phase.train is not None else 0
    if phase.schedule != "constant" and batches <= 0:
        raise ValueError(
            f"A {phase.schedule} schedule needs to know the phase's steps, and the training dataset's "
            "length is unknown (a filtered or repeated tf.data pipeline). Pass arrays or a ttf.data "
            f"dataset, or use the constant schedule. Received: schedule={phase.schedule!r}")
    rate = learning_rate(phase.schedule, phase.learning_rate, batches * phase.epochs)
    strategy = distribute.strategy_for(phase.model, options.strategy)
    with distribute.scope(strategy):
        if phase.compile is not None:
            phase.compile(phase.model, rate)
        else:
            options.compile(phase.model, rate, multipliers=phase.multipliers)
        history, seconds, earlier, parameters = _fit(phase, options, strategy, backup)
        if classifier is not None and phase.model is not classifier:
            options.compile(classifier, phase.learning_rate, optimizer=phase.model.optimizer)
    ran = len(next(iter(history.values()), []))
    result = PhaseResult(
        name=phase.name, first_epoch=phase.first_epoch, epochs=ran,
        learning_rate=float(phase.learning_rate), seconds=seconds,
        trainable_blocks=list(phase.trainable_blocks), trainable_params=parameters,
        best={k: (min(v) if k.endswith("loss") else max(v)) for k, v in history.items()},
    )
    if backup is not None:
        backup.finish(phase.name, result, history, classifier or phase.model, ran=ran - len(earlier))
    return result, history


def _fit(phase, options, strategy, backup):
    """Fits the compiled phase model: `(history, seconds, earlier epochs' logs, trainable parameters)`."""
    parameters = trainable_parameters(phase.model)
    if options.verbose != 0 and phase.epochs > 0 and phase.header:
        print(f"{phase.header} ({parameters:,} parameters).")
    callbacks = list(options.callbacks)
    if options.patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=options.patience, restore_best_weights=True))
    earlier = []
    if backup is not None:
        callbacks += backup.callbacks(phase.name)
        earlier = [e for e in backup.earlier_epochs(phase.name) if e["epoch"] < backup.epochs_done(phase.name)]
        backup.replay_shuffle(phase)
    start = time.perf_counter()
    history = {}
    if phase.epochs > 0:
        distribute.draw_build_order(phase.train, strategy)
        build_optimizer(phase.model)
        with distribute.multi_worker_fit(strategy):
            fit = phase.model.fit(
                distribute.sharded(options.prepare(phase.train), strategy),
                validation_data=distribute.sharded(options.prepare(phase.validation), strategy),
                epochs=phase.first_epoch + phase.epochs, initial_epoch=phase.first_epoch,
                class_weight=options.class_weight, callbacks=callbacks, verbose=options.verbose,
                shuffle=False,
            )
        # Keras keeps the epoch BackupAndRestore restored; the next fit must not inherit it.
        phase.model._initial_epoch = None
        history = {k: [float(v) for v in values] for k, values in fit.history.items()}
        if earlier:
            history = {k: [e[k] for e in earlier] + v for k, v in history.items()}
    return history, time.perf_counter() - start, earlier, parameters

