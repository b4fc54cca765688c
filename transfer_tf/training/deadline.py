"""A callback that ends training before a deadline: no epoch starts that cannot finish by it."""

import time

import keras


class StopBeforeDeadline(keras.callbacks.Callback):
    """Stops `fit` when the next epoch would end after `deadline`.

    After each epoch it compares what is left with the slowest epoch so far
    (of this `fit`). The first epoch of a `fit` runs unless the deadline has
    passed already (then only one batch runs: Keras cannot stop sooner), so
    the caller checks before training that one epoch fits. An
    early-stopping callback still restores its best weights when this one
    stops training.

    Args:
        deadline: float. A time of `clock`.
        clock: callable returning seconds. Defaults to `time.monotonic`.

    Attributes:
        stopped: bool. Whether it stopped a `fit`.
    """

    def __init__(self, deadline, *, clock=time.monotonic):
        super().__init__()
        self.deadline = float(deadline)
        self.clock = clock
        self.stopped = False

    def on_train_begin(self, logs=None):
        self._slowest = 0.0
        if self.clock() >= self.deadline:
            self.model.stop_training = True
            self.stopped = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self._slowest = max(self._slowest, now - self._epoch_started)
        if now + self._slowest > self.deadline:
            self.model.stop_training = True
            self.stopped = True
