"""Learning rates over a phase: constant, cosine with warm-up, one-cycle; and rates per block.

A schedule is a Keras `LearningRateSchedule` of the optimizer's step, made
per phase from its peak rate and its number of steps. Discriminative rates
(`fine_tune_lr=(low, high)`) give each unfrozen block of phase 2 its own
rate, spread geometrically from `low` (the lowest unfrozen block) to `high`
(the top block and the head): with Adam, scaling a gradient is not scaling
its step, so `DiscriminativeAdam` scales each variable's learning rate.
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="transfer_tf")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """fastai's one-cycle policy: cosine warm-up from `peak / div` to `peak`, cosine down to `peak / final_div`.

    Args:
        peak: float. The highest rate.
        total_steps: int. Steps of the phase.
        warmup_fraction: float. Fraction of the steps spent warming up.
            Defaults to `0.25`.
        div: float. `peak / div` is the first rate. Defaults to `25`.
        final_div: float. `peak / final_div` is the last rate. Defaults to
            `1e5`.
    """

    def __init__(self, peak, total_steps, warmup_fraction=0.25, div=25.0, final_div=1e5):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.div = float(div)
        self.final_div = float(final_div)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        total = max(self.total_steps, 1)
        warmup = max(self.warmup_fraction * total, 1.0)
        low, high, final = self.peak / self.div, self.peak, self.peak / self.final_div

        def cosine(start, end, fraction):
            fraction = ops.clip(fraction, 0.0, 1.0)
            return end + (start - end) * (1.0 + ops.cos(math.pi * fraction)) / 2.0

        rising = cosine(low, high, step / warmup)
        falling = cosine(high, final, (step - warmup) / max(total - warmup, 1.0))
        return ops.where(step < warmup, rising, falling)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_fraction": self.warmup_fraction, "div": self.div, "final_div": self.final_div}


def learning_rate(schedule, peak, total_steps, warmup_fraction=0.1):
    """The optimizer's learning rate for a phase: `peak`, or a schedule peaking at it.

    Args:
        schedule: str. `"constant"`, `"cosine"` (linear warm-up over
            `warmup_fraction` of the steps, then cosine decay to 0) or
            `"one_cycle"`.
        peak: float. The phase's learning rate.
        total_steps: int. The phase's steps.
        warmup_fraction: float. Defaults to `0.1`.
    """
    if schedule == "constant" or total_steps <= 0:
        return peak
    if schedule == "cosine":
        warmup = int(round(warmup_fraction * total_steps))
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else peak, decay_steps=max(total_steps - warmup, 1),
            warmup_target=peak if warmup else None, warmup_steps=warmup)
    return OneCycle(peak, total_steps)


def block_rates(blocks, low, high):
    """Rates spread geometrically over `blocks` (input side first), from `low` to `high`."""
    if len(blocks) == 1:
        return {blocks[0]: high}
    ratio = (high / low) ** (1.0 / (len(blocks) - 1))
    return {block: low * ratio ** i for i, block in enumerate(blocks)}


class DiscriminativeAdam(keras.optimizers.Adam):
    """Adam whose learning rate is multiplied per variable (by its block's share of the peak).

    Args:
        multiplier_of: callable. Variable to its multiplier (1 for the
            head). Evaluated once, when the optimizer is built.
        **kwargs: `keras.optimizers.Adam` arguments; `learning_rate` is the
            peak (the top block's and the head's rate).
    """

    def __init__(self, multiplier_of, **kwargs):
        super().__init__(**kwargs)
        self._multiplier_of = multiplier_of
        self._multipliers = {}

    def build(self, variables):
        super().build(variables)
        self._multipliers = {self._var_key(v): float(self._multiplier_of(v)) for v in variables}

    def update_step(self, gradient, variable, learning_rate):
        factor = self._multipliers.get(self._var_key(variable), 1.0)
        super().update_step(gradient, variable, ops.cast(learning_rate, variable.dtype) * factor)
