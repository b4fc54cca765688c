"""Which recipe suits a base on a folder: each tried in turn, cheapest first, within a time budget.

A recipe is one record of `RECIPES`: a classical head on the frozen
features, a dense head on the frozen base, or the dense head and then the
top 1, 2 or 3 blocks fine-tuned. Every trial trains on the training images
with its learning rate found by the finder and its epochs ended by early
stopping on the validation images, and is scored on the validation images
alone. Before a trial starts, its cost is estimated from what this run has
measured (the base's seconds per image, the share of its forward pass in
the blocks that train); a trial that would not fit what is left of the
budget does not start, and a `StopBeforeDeadline` callback ends the epochs
of one that runs long.
"""

import dataclasses
import time

import numpy as np

from transfer_tf.backbones.blocks import split_base
from transfer_tf.evaluation.predictions import predict_dataset
from transfer_tf.methods.base_ranking import PROBE_FOLDS
from transfer_tf.methods.classical import ESTIMATORS, fit_classical
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.freezing import blocks_to_unfreeze
from transfer_tf.training.deadline import StopBeforeDeadline
from transfer_tf.training.two_phase import fine_tune

HEAD_EPOCHS = 30  # at most; early stopping ends phase 1 sooner
FINE_TUNE_EPOCHS = 10  # at most; early stopping or the deadline ends phase 2 sooner
PATIENCE = 3
BACKWARD_COST = 3.0  # a training step costs about three forward passes
PROBE_IMAGES = 16
CLASSICAL_FOLDS = 3  # the classical head's cross-validated search: 3 folds, not fit_classical's 5, for time
CLASSICAL_SLACK = 2.0  # its fits at high C take longer than the ranking's probe at one C (1.8x on the digits)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One way to train on a base.

    Attributes:
        name: str. Short name, as `auto.json` records it.
        description: str. What it does, for the report.
        head: str. `"dense"`, or a classical estimator (`"logistic"`).
        unfreeze_blocks: int. Blocks fine-tuned after the head (dense only).
    """

    name: str
    description: str
    head: str
    unfreeze_blocks: int = 0


RECIPES = (  # cheapest first
    Recipe("logistic", "logistic regression on the frozen base's features", "logistic"),
    Recipe("dense_head", "dense head on the frozen base", "dense"),
    Recipe("top1", "dense head, then the top block fine-tuned", "dense", 1),
    Recipe("top2", "dense head, then the top 2 blocks fine-tuned", "dense", 2),
    Recipe("top3", "dense head, then the top 3 blocks fine-tuned", "dense", 3),
)


@dataclasses.dataclass
class Trial:
    """One recipe tried on one base.

    Attributes:
        recipe: str. A `Recipe` name.
        backbone: str.
        image_size: int.
        estimated_seconds: float. The cost expected before it started, to
            the end of its first fine-tuning epoch (early stopping or the
            deadline decide how many more run).
        seconds: float or `None`. What it took; `None` if it did not start.
        validation_accuracy: float or `None`.
        validation_loss: float or `None`. Mean cross-entropy.
        epochs: list of int. Epochs run per phase.
        learning_rate: float or `None`. The finder's rate of phase 1.
        note: str. Why it did not start, or what ended it early.
    """

    recipe: str
    backbone: str
    image_size: int
    estimated_seconds: float
    seconds: object = None
    validation_accuracy: object = None
    validation_loss: object = None
    epochs: list = dataclasses.field(default_factory=list)
    learning_rate: object = None
    note: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BaseCosts:
    """What one base costs here, measured on this run's images.

    Attributes:
        per_image: float. Seconds per image of the frozen base's pass,
            decoding included.
        build: float. Seconds to build the classifier.
        probe: float. Seconds of the ranking's scores (LogME and a 5-fold
            linear probe at one regularisation), the yardstick of a
            classical head's cross-validated search.
        top_share: dict. Blocks fine-tuned to the share of the forward pass
            they hold, measured on a probe batch.
    """

    per_image: float
    build: float
    probe: float
    top_share: dict = dataclasses.field(default_factory=dict)


def build(backbone, size, splits, weights):
    """A fresh classifier for a trial, and the seconds building it took."""
    started = time.perf_counter()
    classifier = ImageClassifier.from_backbone(backbone, class_names=splits.class_names, image_size=size,
                                               weights=weights)
    return classifier, time.perf_counter() - started


def forward_seconds_per_image(classifier):
    """Seconds per image of the frozen base, timed on a probe batch."""
    return _timed_call(classifier.base, _probe_inputs(classifier))[0] / PROBE_IMAGES


def top_share(classifier, unfreeze_blocks):
    """The share of the base's forward pass in its top `unfreeze_blocks` blocks, timed on a probe batch."""
    spec = classifier.backbone_spec
    names = blocks_to_unfreeze(classifier, unfreeze_blocks)
    if len(names) >= len(spec.blocks):
        return 1.0
    bottom, top = split_base(classifier.base, spec, names[0])
    below, activations = _timed_call(bottom, _probe_inputs(classifier))
    above, _ = _timed_call(top, activations)
    return above / max(below + above, 1e-9)


def _probe_inputs(classifier):
    return classifier.preprocessor(np.zeros((PROBE_IMAGES, *classifier.image_size, 3), np.float32))


def _timed_call(model, inputs):
    """`(seconds, outputs)` of one inference call, after an untimed one (tracing, first-call allocation)."""
    model(inputs, training=False)
    started = time.perf_counter()
    outputs = model(inputs, training=False)
    return time.perf_counter() - started, outputs


def estimate(recipe, costs, counts, head_seconds):
    """Seconds a trial should take: build, the cached pass, phase 1, one epoch of phase 2.

    Args:
        counts: dict with `"train"` and `"validation"` image counts.
        head_seconds: float or `None`. Phase 1's measured seconds (from the
            dense-head trial), else a tenth of the cached pass.
    """
    images = counts["train"] + counts["validation"]
    cached_pass = images * costs.per_image
    if recipe.head != "dense":  # the ranking's cached features, the cross-validated search, validation
        grid = max(len(values) for values in ESTIMATORS[recipe.head].grid.values())
        search = grid * costs.probe * CLASSICAL_FOLDS / PROBE_FOLDS * CLASSICAL_SLACK
        return costs.build + search + counts["validation"] * costs.per_image
    phase1 = cached_pass / 10 if head_seconds is None else head_seconds
    total = costs.build + cached_pass + phase1
    if recipe.unfreeze_blocks:
        share = costs.top_share.get(recipe.unfreeze_blocks, 1.0)
        total += (BACKWARD_COST * counts["train"] + counts["validation"]) * costs.per_image * share
    return total


def run_trial(recipe, splits, backbone, size, *, weights, seed, deadline, estimated, feature_cache="auto",
              verbose=False):
    """Trains one recipe; returns `(Trial, trained classifier, phase 1 seconds or None)`.

    `feature_cache` serves the classical head, whose features the ranking
    of the bases may have left in a folder.
    """
    trial = Trial(recipe.name, backbone, size, estimated)
    started = time.perf_counter()
    classifier, _ = build(backbone, size, splits, weights)
    head_seconds = None
    if recipe.head != "dense":
        classifier = fit_classical(classifier, splits.train, estimator=recipe.head, cv=CLASSICAL_FOLDS, seed=seed,
                                   feature_cache_mode=feature_cache, verbose=verbose)
        trial.validation_accuracy, trial.validation_loss = validation_scores(classifier, splits.validation)
    else:
        stop = StopBeforeDeadline(deadline)
        result = fine_tune(classifier, splits.train, splits.validation, head_epochs=HEAD_EPOCHS,
                           fine_tune_epochs=FINE_TUNE_EPOCHS if recipe.unfreeze_blocks else 0,
                           unfreeze_blocks=recipe.unfreeze_blocks, head_lr="find",
                           early_stopping_patience=PATIENCE, seed=seed, callbacks=[stop],
                           verbose=2 if verbose else 0)
        trial.validation_accuracy, trial.validation_loss = restored_scores(result)
        trial.epochs = [phase.epochs for phase in result.phases if phase.epochs]
        trial.learning_rate = result.phases[0].learning_rate
        head_seconds = result.phases[0].seconds
        if stop.stopped:
            trial.note = "epochs cut short by the budget"
    trial.seconds = time.perf_counter() - started
    return trial, classifier, head_seconds


def validation_scores(classifier, validation):
    """Accuracy and mean cross-entropy of a classifier on the validation images."""
    predictions = predict_dataset(classifier, validation)
    labels = np.asarray(predictions.labels).reshape(-1).astype(int)
    chosen = predictions.scores[np.arange(len(labels)), labels]
    return (float(np.mean(predictions.scores.argmax(axis=1) == labels)),
            float(-np.mean(np.log(np.clip(chosen, 1e-7, 1.0)))))


def restored_scores(result):
    """Validation accuracy and loss of the weights early stopping kept: the last phase's lowest loss."""
    last = [phase for phase in result.phases if phase.epochs][-1]
    losses = result.history["val_loss"][last.first_epoch:last.end_epoch]
    best = last.first_epoch + int(np.argmin(losses))
    return result.history["val_accuracy"][best], result.history["val_loss"][best]


def is_better(trial, best):
    """Higher validation accuracy wins; a tie goes to the lower loss, then to the cheaper (earlier) trial."""
    if best is None:
        return True
    if trial.validation_accuracy != best.validation_accuracy:
        return trial.validation_accuracy > best.validation_accuracy
    return trial.validation_loss < best.validation_loss
