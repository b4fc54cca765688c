"""How well a frozen base's features suit a task, before fine-tuning it: LogME and a linear probe.

LogME (You et al., ICML 2021) is the log marginal likelihood, per image, of
the labels under a Bayesian linear model on the features, with the prior's
and the noise's precisions (`alpha`, `beta`) set to maximise it; averaged
over the classes (each a one-hot target). It needs one pass of the base and
a singular value decomposition, no training, and was shown to rank
pretrained models as their fine-tuned accuracy does. The linear probe is
the cross-validated accuracy of a logistic regression on the same features:
slower, and in the units a user knows.
"""

import dataclasses

import numpy as np

from transfer_tf.core.checks import check_int

_MAX_ITERATIONS = 11  # LogME's fixed point settles in two or three; the reference stops at 11
_TOLERANCE = 0.01  # relative change of alpha / beta
_EPSILON = 1e-5


@dataclasses.dataclass
class Transferability:
    """Scores of one feature set for one labelled task; higher is better for both.

    Attributes:
        logme: float. LogME, the mean over classes of the per-image log
            evidence.
        linear_probe: float or `None`. Cross-validated accuracy of a logistic
            regression on the features (`None` when not computed).
        num_images: int.
        num_features: int.
    """

    logme: float
    linear_probe: object
    num_images: int
    num_features: int

    def to_dict(self):
        return dataclasses.asdict(self)


def logme(features, labels):
    """LogME of features for class labels.

    Args:
        features: array `(n, d)`: one feature vector per image (for
            example the base's average-pooled output).
        labels: array `(n,)` of class indices, at least two classes.

    Returns:
        float. The mean over classes of the maximised log evidence per
        image; comparable between feature sets of the same images.

    Raises:
        ValueError: for arrays of the wrong shape or a single class.
    """
    features, labels = _check(features, labels)
    spectrum = _spectrum(features)
    return float(np.mean([_evidence(features, (labels == label).astype(np.float64), spectrum)[0]
                          for label in np.unique(labels)]))


def fitted_evidence(features, target):
    """`(evidence per image, alpha, beta)` of one real-valued target: LogME's fixed point."""
    features = np.asarray(features, np.float64)
    return _evidence(features, np.asarray(target, np.float64), _spectrum(features))


def _spectrum(features):
    """Eigenvalues (clipped at 0) and eigenvectors of `F^T F`, shared by every target of one feature set."""
    eigenvalues, eigenvectors = np.linalg.eigh(features.T @ features)
    return np.clip(eigenvalues, 0.0, None), eigenvectors


def _evidence(features, target, spectrum):
    eigenvalues, eigenvectors = spectrum
    n, d = features.shape
    projected = eigenvectors.T @ (features.T @ target)

    def posterior(alpha, beta):
        """The posterior mean's squared norm and the squared residual at these precisions."""
        mean = eigenvectors @ (projected * beta / (alpha + beta * eigenvalues))
        return float(mean @ mean), float(((target - features @ mean) ** 2).sum())

    alpha, beta = 1.0, 1.0
    for _ in range(_MAX_ITERATIONS):
        ratio = alpha / beta
        gamma = float((eigenvalues / (eigenvalues + ratio)).sum())
        weight_norm, residual = posterior(alpha, beta)
        alpha = gamma / (weight_norm + _EPSILON)
        beta = (n - gamma) / (residual + _EPSILON)
        if abs(alpha / beta - ratio) / ratio < _TOLERANCE:
            break
    weight_norm, residual = posterior(alpha, beta)
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * eigenvalues))
                - beta / 2 * residual - alpha / 2 * weight_norm - n / 2 * np.log(2 * np.pi))
    return float(evidence / n), alpha, beta


def linear_probe_accuracy(features, labels, *, folds=5, seed=0):
    """Stratified `folds`-fold cross-validated accuracy of a standardised logistic regression.

    Raises:
        ValueError: for arrays of the wrong shape, a single class, or a class
            with fewer images than `folds`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = _check(features, labels)
    check_int("folds", folds, minimum=2)
    smallest = int(np.bincount(np.unique(labels, return_inverse=True)[1]).min())
    if smallest < folds:
        raise ValueError(f"A {folds}-fold linear probe needs at least {folds} images of every class; the "
                         f"smallest class has {smallest}. Pass fewer folds. Received: folds={folds}")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(probe, features, labels, cv=splits)))


def transferability(features, labels=None, *, linear_probe=True, folds=5, seed=0):
    """Both scores of a feature set: LogME, and (optionally) the linear probe.

    Args:
        features: array `(n, d)`, or the `Features` `extract_features`
            returns (its labels are then used when `labels` is `None`).
        labels: array `(n,)` of class indices, or `None` with `Features`.
            Defaults to `None`.
        linear_probe: bool. Also fit the cross-validated linear probe.
            Defaults to `True`.
        folds: int. Folds of the probe. Defaults to `5`.
        seed: int. Seeds the probe's folds. Defaults to `0`.

    Returns:
        `Transferability`.

    Example:

        >>> feats = ttf.extract_features("efficientnet_lite0", splits.train)  # doctest: +SKIP
        >>> ttf.transferability(feats).logme                                 # doctest: +SKIP
    """
    if labels is None and hasattr(features, "labels"):
        features, labels = features.features, features.labels
    features, labels = _check(features, labels)
    probe = linear_probe_accuracy(features, labels, folds=folds, seed=seed) if linear_probe else None
    return Transferability(logme=logme(features, labels), linear_probe=probe, num_images=len(labels),
                           num_features=features.shape[1])


def _check(features, labels):
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2:
        raise ValueError(f"features must be an array (images, features), for example pooled base outputs. "
                         f"Received: features.shape={features.shape}")
    if len(labels) != len(features):
        raise ValueError(f"There are {len(features)} feature vectors and {len(labels)} labels. "
                         f"Received: labels.shape={labels.shape}")
    if len(np.unique(labels)) < 2:
        raise ValueError(f"Transferability needs images of at least two classes. Received: "
                         f"{len(labels)} images of one class")
    if not np.isfinite(features).all():
        raise ValueError("features hold NaN or infinite values. Received: a non-finite feature array")
    return features, labels
