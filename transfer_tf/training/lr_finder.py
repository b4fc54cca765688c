"""The learning-rate finder: an exponential sweep of the rate over a few batches, as fastai's `lr_find`.

The rate grows from `start_lr` to `end_lr` over `steps` batches (the data repeats as needed);
each batch's own loss is smoothed (an exponential moving average, beta 0.98,
debiased) and the sweep stops once the smoothed loss exceeds 4 times its
best. Suggestions, on the losses without the first tenth and the last five:
`valley` (the middle of the longest descent, fastai's default), `minimum`
(the rate of the lowest loss, divided by 10) and `steep` (the steepest
descent). The sweep trains a copy of the phase's model on the phase's data
(cached features when possible, so it takes seconds); the classifier's
weights, its random state and its optimizer are as they were afterwards.
"""

import dataclasses
import math

import keras
import numpy as np

from transfer_tf.core.checks import check_choice, check_int, check_number
from transfer_tf.core.seeding import seed_job
from transfer_tf.data.inputs import training_data
from transfer_tf.model import distribute
from transfer_tf.model.freezing import all_layers, freeze_base, unfreeze_top_blocks
from transfer_tf.training import feature_cache
from transfer_tf.training.phases import FitOptions, build_optimizer

PHASES = ("head", "fine_tune")
SUGGESTIONS = ("valley", "minimum", "steep")


@dataclasses.dataclass
class LRFinderResult:
    """What a learning-rate sweep found.

    Attributes:
        learning_rates: list of float. The rate of each batch.
        losses: list of float. Each batch's own loss.
        smoothed: list of float. The smoothed losses.
        suggestions: dict. `valley`, `minimum` and `steep` rates.
        phase: str. `"head"` or `"fine_tune"`.
    """

    learning_rates: list
    losses: list
    smoothed: list
    suggestions: dict
    phase: str

    def to_dict(self):
        return dataclasses.asdict(self)

    def plot(self, *, path=None):
        """The smoothed loss against the rate (log scale), the suggestions marked (a `Figure`)."""
        from transfer_tf.training.lr_plot import plot_lr_sweep

        return plot_lr_sweep(self, path=path)


class _Sweep(keras.callbacks.Callback):
    """Sets each batch's rate, recovers each batch's loss from Keras's running mean, stops on divergence."""

    def __init__(self, rates, beta=0.98, diverge=4.0):
        super().__init__()
        self.rates, self.beta, self.diverge = rates, beta, diverge
        self.losses, self.smoothed, self.used = [], [], []
        self._mean, self._average, self._best = 0.0, 0.0, math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rates[batch]

    def on_train_batch_end(self, batch, logs=None):
        # Keras 3 reports the running mean of the epoch: m_n = ((n - 1) m_(n-1) + l_n) / n.
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * self._mean
        self._mean = mean
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** (batch + 1))
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        self.used.append(self.rates[batch])
        self._best = min(self._best, smoothed)
        if not math.isfinite(smoothed) or smoothed > self.diverge * self._best:
            self.model.stop_training = True


def suggest(learning_rates, losses):
    """`valley`, `minimum` and `steep` from a sweep, as fastai computes them."""
    rates, losses = np.asarray(learning_rates, np.float64), np.asarray(losses, np.float64)
    skip = len(losses) // 10
    rates, losses = rates[skip:len(losses) - 5], losses[skip:len(losses) - 5]
    if len(losses) < 3:
        raise ValueError("The sweep stopped after too few batches to suggest a rate; "
                         "lower start_lr or use more batches.")
    # valley: the longest decreasing subsequence; the rate two thirds of the way down it.
    longest = [1] * len(losses)
    start = end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[end] < longest[i]:
            end, start = i, i - longest[i]
    section = (end - start) / 3
    valley = rates[start + int(section) + int(section / 2)]
    slopes = np.gradient(losses, np.log(rates))
    return {"valley": float(valley), "minimum": float(rates[np.argmin(losses)] / 10),
            "steep": float(rates[np.argmin(slopes)])}


def sweep(model, dataset, options, *, start_lr=1e-7, end_lr=10.0, steps=100, phase="head"):
    """Runs a sweep on `model` (a stand-in sharing the classifier's layers) and restores its variables."""
    rates = list(np.geomspace(start_lr, end_lr, steps))
    saved = [keras.ops.convert_to_numpy(v).copy() for v in model.variables]
    strategy = distribute.strategy_for(model, options.strategy)
    callback = _Sweep(rates)
    with distribute.scope(strategy):
        options.compile(model, start_lr)
        build_optimizer(model)
        try:
            with distribute.multi_worker_fit(strategy):
                model.fit(distribute.sharded(options.prepare(dataset).repeat(), strategy),
                          steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[callback],
                          class_weight=options.class_weight)
        finally:
            for variable, value in zip(model.variables, saved):
                variable.assign(value)
    return LRFinderResult(learning_rates=[float(r) for r in callback.used],
                          losses=[float(v) for v in callback.losses],
                          smoothed=[float(v) for v in callback.smoothed],
                          suggestions=suggest(callback.used, callback.smoothed), phase=phase)


def find_lr(classifier, train_data, *, phase="head", unfreeze_blocks=1, start_lr=1e-7, end_lr=10.0,
            steps=100, batch_size=None, feature_cache_mode="auto", seed=None, strategy=None, verbose=True):
    """Sweeps the learning rate of one of `fine_tune`'s phases and suggests one.

    Args:
        classifier: `ImageClassifier`. Left as it was: weights, trainable
            flags, random state and optimizer.
        train_data: training images, as for `fine_tune`.
        phase: str. `"head"` (the head on the frozen base) or
            `"fine_tune"` (the top `unfreeze_blocks` blocks and the head).
            Defaults to `"head"`.
        unfreeze_blocks: int or `"all"`. For `"fine_tune"`. Defaults to `1`.
        start_lr: float. The sweep's first rate. Defaults to `1e-7`.
        end_lr: float. The sweep's last rate. Defaults to `10`.
        steps: int. This many batches, unless the loss diverges first; the
            data repeats as often as needed, as in fastai, so that a set of
            one or two batches still gets a whole sweep. Defaults to `100`.
        batch_size: int or `None`. For arrays. Defaults to `None` (32).
        feature_cache_mode: as `fine_tune`'s `feature_cache`. Defaults to
            `"auto"`.
        seed: int or `None`. Defaults to `None`.
        strategy: `tf.distribute.Strategy` or `None`. As for `fine_tune`.
            Defaults to `None`: the classifier's own, if any.
        verbose: bool. Defaults to `True`.

    Returns:
        `LRFinderResult`; `.suggestions["valley"]` is the usual choice,
        `.plot()` draws the sweep.

    Raises:
        ValueError: for an unknown phase or a setting out of range.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "vgg16", num_classes=2, image_size=32, weights=None)
        >>> x = np.random.uniform(0, 255, (64, 32, 32, 3))
        >>> result = find_lr(clf, (x, np.arange(64) % 2), steps=30, verbose=False)
        >>> sorted(result.suggestions)
        ['minimum', 'steep', 'valley']
    """
    check_choice("phase", phase, PHASES)
    check_number("start_lr", start_lr, above=0)
    check_number("end_lr", end_lr, above=start_lr)
    check_int("steps", steps, minimum=10)
    seed_job(seed)
    strategy = distribute.strategy_for(classifier, strategy)
    train, _ = training_data(classifier, train_data, None, batch_size, seed)
    distribute.check_same_order(strategy, {"train_data": train})
    flags = [(layer, layer.trainable) for layer in _layers(classifier)]
    try:
        with distribute.scope(strategy):
            freeze_base(classifier)
            cache, _ = feature_cache.start(classifier, {"train": train},
                                           unfreeze_blocks if phase == "fine_tune" else 0,
                                           feature_cache_mode, verbose=verbose)
            if phase == "head":
                data = cache.head_phase()
            else:
                data = cache.fine_tune_phase(unfreeze_top_blocks(classifier, unfreeze_blocks))
            model = data.model if data.model is not classifier else wrapper(classifier)
            result = sweep(model, data.train, FitOptions.for_classifier(classifier, strategy=strategy),
                           start_lr=start_lr, end_lr=end_lr, steps=steps, phase=phase)
    finally:
        for layer, trainable in flags:
            layer.trainable = trainable
    if verbose:
        print("Learning-rate finder: " + ", ".join(f"{k} {v:.2g}" for k, v in result.suggestions.items()))
    return result


def _layers(classifier):
    return [classifier.base, *all_layers(classifier.base)]


def wrapper(classifier):
    """A functional model around the classifier, so compiling it leaves the classifier's optimizer alone."""
    inputs = keras.Input((*classifier.image_size, 3))
    return keras.Model(inputs, classifier(inputs), name="lr_finder")
