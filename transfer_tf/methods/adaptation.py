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

from transfer_tf.core.checks import check_choice, check_int, check_number
from transfer_tf.core.choices import ADAPTATION_METHODS
from transfer_tf.data.inputs import (
    check_batch_size_applies,
)
from transfer_tf.methods.adabn import adapt_batchnorm
from transfer_tf.methods.alignment import align
from transfer_tf.model import distribute
from transfer_tf.training.settings import FineTuneSettings

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
            result = adapt_batchnorm(classifier, source_data, target_data, s, verbose)
        else:
            result = align(classifier, source_data, target_data, target_labelled, s, extra,
                            callbacks, verbose, strategy)
    result.settings = {"method": method, "domain_weight": extra.alignment_weight,
                       "target_labelled": target_labelled is not None, **s.to_dict()}
    classifier.training_record = result
    return result


# -- AdaBN ---------------------------------------------------------------------------------------
