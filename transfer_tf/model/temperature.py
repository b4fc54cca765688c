"""`TemperatureScaling`: the layer that makes a classifier's probabilities mean what they say."""

import keras
from keras import ops

from transfer_tf.core.choices import TASKS

_EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="transfer_tf")
class TemperatureScaling(keras.layers.Layer):
    """Divides the logits behind the head's probabilities by one temperature.

    Softmax probabilities `p` become `softmax(log(p) / T)`, sigmoid scores
    `sigmoid(logit(p) / T)`: `T > 1` softens over-confident scores, `T < 1`
    sharpens them, and the ranking of the classes, hence every top-1
    prediction, stays the same. At `T = 1` the scores pass unchanged. It
    is part of the classifier, so every saved and exported model carries it.

    Args:
        task: str. The classifier's task (`"multiclass"`, `"binary"` or
            `"multilabel"`). Defaults to `"multiclass"`.
        temperature: float > 0. Defaults to `1.0`.
    """

    def __init__(self, task="multiclass", temperature=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}. Received: task={task!r}")
        self.task = task
        self.temperature = check_temperature(temperature)

    def call(self, scores):
        if self.temperature == 1.0:
            return scores
        scores = ops.clip(ops.cast(scores, "float32"), _EPSILON, 1.0 - _EPSILON)
        if self.task == "multiclass":
            return ops.softmax(ops.log(scores) / self.temperature, axis=-1)
        return ops.sigmoid((ops.log(scores) - ops.log(1.0 - scores)) / self.temperature)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "task": self.task, "temperature": self.temperature}


def check_temperature(temperature):
    """The temperature as a float, if it is a positive finite number."""
    value = _as_float(temperature)
    if not 0.0 < value < float("inf"):
        raise ValueError(f"temperature must be a number > 0. Received: temperature={temperature!r}")
    return value


def check_unknown_threshold(threshold):
    """`None`, or the threshold as a float, if it is a probability in (0, 1]."""
    if threshold is None:
        return None
    value = _as_float(threshold)
    if not 0.0 < value <= 1.0:
        raise ValueError("unknown_threshold must be None or a probability in (0, 1]. "
                         f"Received: unknown_threshold={threshold!r}")
    return value


def _as_float(value):
    """`value` as a float, or NaN (which every range check refuses) if it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
