"""What a training run did: its phases and their history, as plain data.

Kept apart from the trainers so that run folders (`saving`) can read and
write them without importing any trainer.
"""

import dataclasses


@dataclasses.dataclass
class PhaseResult:
    """What one training phase did.

    Attributes:
        name: str. `"head"`, `"fine_tune"`, `"from_scratch"`, ...
        first_epoch: int. Index of the phase's first epoch in the run.
        epochs: int. Epochs run (fewer than asked if early stopping fired).
        learning_rate: float. The optimizer's learning rate.
        seconds: float. Wall time of the phase's `fit`.
        trainable_blocks: list of str. Blocks of the base that trained.
        trainable_params: int. Number of trainable parameters.
        best: dict. Best value of each metric over the phase (lowest loss,
            highest of the others).
    """

    name: str
    first_epoch: int
    epochs: int
    learning_rate: float
    seconds: float
    trainable_blocks: list
    trainable_params: int
    best: dict

    @property
    def end_epoch(self):
        """The index of the epoch after the phase's last."""
        return self.first_epoch + self.epochs


@dataclasses.dataclass
class HeldOutOutputs:
    """The head's outputs on held-out images, in their dataset's natural order.

    Attributes:
        fingerprint: str. The dataset's `Recipe.fingerprint()`: which images
            and labels these outputs belong to.
        outputs: array `(n, units)`. What the head gave, before the
            classifier's calibration layer.
    """

    fingerprint: str
    outputs: object


@dataclasses.dataclass
class FineTuneResult:
    """The outcome of a training run (`fine_tune`, `train_from_scratch`, ...).

    Attributes:
        history: dict. Metric name to per-epoch values across the phases.
        phases: list of `PhaseResult`, in order.
        phase_boundary: int. Index of the first epoch of phase 2 in `history`.
        settings: dict. The settings the run used.
        cache: dict or `None`. What the feature cache did
            (`feature_cache.CacheReport` as a dict).
        validation_outputs: `HeldOutOutputs` or `None`. The head's outputs
            on the validation images, computed from the feature cache as
            training ended; a report uses them instead of running the whole
            model again. Not saved.
    """

    history: dict
    phases: list
    phase_boundary: int
    settings: dict
    cache: dict = None
    validation_outputs: object = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self):
        """Returns the result as plain JSON-serialisable data."""
        data = dataclasses.asdict(dataclasses.replace(self, validation_outputs=None))
        del data["validation_outputs"]
        return data

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["phases"] = [PhaseResult(**phase) for phase in data["phases"]]
        return cls(**data)

    @classmethod
    def merge(cls, phases, settings, cache=None):
        """One result from `(PhaseResult, history)` pairs, histories laid end to end.

        A metric a phase did not log is `None` for that phase's epochs.
        """
        keys = dict.fromkeys(key for _, history in phases for key in history)
        history = {
            key: [value for phase, phase_history in phases
                  for value in phase_history.get(key, [None] * phase.epochs)]
            for key in keys
        }
        return cls(history=history, phases=[phase for phase, _ in phases],
                   phase_boundary=phases[0][0].epochs, settings=settings, cache=cache)
