"""Deep features and a classical classifier: the frozen base runs once, scikit-learn does the rest.

The oldest and often strongest baseline with few labels: the pretrained base
runs once over the images (the feature cache), its feature maps are
average-pooled, and a scikit-learn estimator is fitted on them, its
regularisation chosen by cross-validation.

- A **linear** estimator (`"logistic"`, `"linear_svm"`) becomes the
  classifier's own Dense head: the scaler and the coefficients are folded
  into its weights. The result is an ordinary `ImageClassifier`: it saves,
  loads with `safe_mode`, evaluates and exports to SavedModel and TFLite.
- A **non-linear** one (`"rbf_svm"`, `"knn"`) stays a scikit-learn object.
  `EstimatorClassifier` pairs it with the base; its run folder keeps the
  estimator in skops format (scikit-learn's own recommendation; never a
  plain pickle), whose loader refuses every type not on an explicit list.
  It evaluates and predicts, but cannot export to TFLite or SavedModel.
"""

import dataclasses
import time

import keras
import numpy as np

from transfer_tf.core.checks import check_choice, check_int
from transfer_tf.core.choices import HEADS
from transfer_tf.data.inputs import training_data
from transfer_tf.data.pipeline import recipe_of
from transfer_tf.methods.estimator_classifier import EstimatorClassifier
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.records import FineTuneResult, PhaseResult
from transfer_tf.training import feature_cache


@dataclasses.dataclass(frozen=True)
class Estimator:
    """One scikit-learn estimator: how to make it, what to search, whether it is linear."""

    name: str
    linear: bool
    grid: dict

    def make(self, seed):
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.svm import SVC, LinearSVC

        return {
            "logistic": lambda: LogisticRegression(max_iter=5000),
            "linear_svm": lambda: LinearSVC(max_iter=20000, random_state=seed),
            "rbf_svm": lambda: SVC(kernel="rbf"),
            "knn": lambda: KNeighborsClassifier(),
        }[self.name]()


ESTIMATORS = {  # one record per estimator of choices.HEADS after "dense"
    "logistic": Estimator("logistic", True, {"C": list(np.logspace(-4, 2, 13))}),
    "linear_svm": Estimator("linear_svm", True, {"C": list(np.logspace(-5, 1, 13))}),
    "rbf_svm": Estimator("rbf_svm", False, {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale", 1e-4, 1e-3]}),
    "knn": Estimator("knn", False, {"n_neighbors": [1, 3, 5, 9, 15, 25]}),
}


@dataclasses.dataclass
class Features:
    """Pooled base features of a dataset, in its natural (unshuffled) order.

    Attributes:
        features: float32 array `(n, channels)`.
        labels: array `(n,)` (or `(n, k)` multi-hot).
    """

    features: np.ndarray
    labels: np.ndarray


def extract_features(model, data, *, image_size=None, weights="imagenet", batch_size=None,
                     feature_cache_mode="auto", verbose=True):
    """The frozen base's average-pooled features of labelled images.

    A dataset built by `ttf.data` (or arrays) goes through the feature cache:
    the base runs once per image (or an earlier run's files are reused), in
    the images' natural order.

    Args:
        model: `ImageClassifier`, or a backbone name (its base is built with
            `weights` at `image_size`).
        data: a batched `tf.data.Dataset` of `(images, labels)` or a tuple of
            arrays.
        image_size: int or `None`. For a backbone name: defaults to the
            backbone's own.
        weights: for a backbone name: as in `from_backbone`. Defaults to
            `"imagenet"`.
        batch_size: int or `None`. For arrays. Defaults to `None` (32).
        feature_cache_mode: as `fine_tune`'s `feature_cache`. Defaults to
            `"auto"`.
        verbose: bool. Defaults to `True`.

    Returns:
        `Features`.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "vgg16", num_classes=2, image_size=32, weights=None)
        >>> x = np.random.uniform(0, 255, (6, 32, 32, 3))
        >>> extract_features(clf, (x, np.arange(6) % 2), verbose=False).features.shape
        (6, 512)
    """
    classifier = model if isinstance(model, ImageClassifier) else ImageClassifier.from_backbone(
        model, num_classes=2, image_size=image_size, weights=weights)
    dataset, _ = training_data(classifier, data, None, batch_size, None)
    recipe = recipe_of(dataset)
    if recipe is not None and str(feature_cache_mode) != "off" and not recipe.augmented:
        cache = feature_cache.FeatureCache.compute(classifier, {"data": dataset}, 0, feature_cache_mode,
                                                   verbose=verbose)
        maps = cache.arrays["data"]["features"]
        pooled = np.concatenate([np.asarray(maps[i:i + 256]).mean(axis=(1, 2))
                                 for i in range(0, len(maps), 256)])
        return Features(pooled.astype(np.float32), np.asarray(recipe.labels))
    pool = keras.layers.GlobalAveragePooling2D()
    features, labels = [], []
    for images, batch_labels in dataset:
        features.append(np.asarray(pool(classifier.extract_features(images))))
        labels.append(np.asarray(batch_labels))
    return Features(np.concatenate(features), np.concatenate(labels))


def fit_estimator(features, labels, estimator="logistic", *, cv=5, seed=0):
    """Fits a standardised scikit-learn estimator, its parameters chosen by cross-validation.

    Returns:
        `(pipeline, best_params, cv_accuracy)`: a fitted `Pipeline`
        (`StandardScaler`, estimator).
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    record = ESTIMATORS[estimator]
    labels = np.asarray(labels).reshape(-1)
    folds = int(min(cv, np.bincount(labels.astype(np.int64)).min()))
    if folds < 2:
        raise ValueError("Cross-validation needs at least 2 training images of every class.")
    grid = dict(record.grid)
    if "n_neighbors" in grid:  # no more neighbours than a training fold holds
        smallest_fold = len(labels) - int(np.ceil(len(labels) / folds))
        grid["n_neighbors"] = [k for k in grid["n_neighbors"] if k <= smallest_fold] or [1]
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("estimator", record.make(seed))]),
        {f"estimator__{k}": v for k, v in grid.items()},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=1)
    search.fit(features, labels)
    pipeline = search.best_estimator_
    if estimator == "rbf_svm":
        from sklearn.calibration import CalibratedClassifierCV

        # SVC has no probabilities of its own: a sigmoid fitted by cross-validation gives them.
        calibrated = CalibratedClassifierCV(pipeline.named_steps["estimator"], ensemble=False, cv=folds)
        pipeline = Pipeline([("scale", pipeline.named_steps["scale"]), ("estimator", calibrated)])
        pipeline.fit(features, labels)
    params = {k.removeprefix("estimator__"): _plain(v) for k, v in search.best_params_.items()}
    return pipeline, params, float(search.best_score_)


def fit_classical(classifier, train_data, *, estimator="logistic", cv=5, seed=0, batch_size=None,
                  feature_cache_mode="auto", verbose=True):
    """Fits a classical estimator on the frozen base's features of a classifier.

    Args:
        classifier: `ImageClassifier` with a plain head (average pooling, no
            hidden layers) for the linear estimators.
        train_data: labelled training images, as for `fine_tune`.
        estimator: str. `"logistic"`, `"linear_svm"`, `"rbf_svm"` or
            `"knn"`. Defaults to `"logistic"`.
        cv: int. Folds of the cross-validation that picks the parameters.
            Defaults to `5`.
        seed: int. Defaults to `0`.
        batch_size: int or `None`. For arrays. Defaults to `None` (32).
        feature_cache_mode: as `fine_tune`'s `feature_cache`. Defaults to
            `"auto"`.
        verbose: bool. Defaults to `True`.

    Returns:
        The trained model: `classifier` itself, its head now the linear
        estimator, or an `EstimatorClassifier`. Either carries a
        `training_record` with one phase, `"classical"`.

    Raises:
        ValueError: for an unknown estimator, a multilabel classifier, or a
            head a linear estimator cannot be copied into.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "vgg16", num_classes=2, image_size=32, weights=None)
        >>> x = np.random.uniform(0, 255, (20, 32, 32, 3))
        >>> model = fit_classical(clf, (x, np.arange(20) % 2), cv=2, verbose=False)
        >>> model is clf
        True
    """
    check_choice("estimator", estimator, HEADS[1:])
    check_int("cv", cv, minimum=2)
    if classifier.task == "multilabel":
        raise ValueError("A classical estimator predicts one label per image; this classifier is multilabel.")
    record = ESTIMATORS[estimator]
    if record.linear:
        _check_plain_head(classifier)
    start = time.perf_counter()
    if verbose:
        print(f"Classical head: {estimator} on the frozen base's pooled features "
              f"({cv}-fold cross-validation of {', '.join(record.grid)}).")
    train = extract_features(classifier, train_data, batch_size=batch_size,
                             feature_cache_mode=feature_cache_mode, verbose=verbose)
    pipeline, params, score = fit_estimator(train.features, train.labels, estimator, cv=cv, seed=seed)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(pipeline.predict(train.features) == np.asarray(train.labels).reshape(-1)))
    phase = PhaseResult(name="classical", first_epoch=0, epochs=0, learning_rate=0.0, seconds=seconds,
                        trainable_blocks=[], trainable_params=0,
                        best={"accuracy": accuracy, "cv_accuracy": score})
    settings = {"method": "classical", "estimator": estimator, "cv": cv, "seed": seed, "params": params}
    result = FineTuneResult(history={}, phases=[phase], phase_boundary=0, settings=settings)
    if verbose:
        print(f"Classical head: {params}, cross-validated accuracy {score:.1%}, {seconds:.1f} s.")
    if record.linear:
        copy_linear_head(pipeline, classifier)
        classifier.training_record = result
        return classifier
    model = EstimatorClassifier(classifier, pipeline, estimator)
    model.training_record = result
    return model


def copy_linear_head(pipeline, classifier):
    """Folds a fitted scaler + linear estimator into the classifier's Dense head.

    The head then computes the estimator's decision function as its logits:
    `softmax` of them is `predict_proba` of a logistic regression.
    """
    scaler, linear = pipeline.named_steps["scale"], pipeline.named_steps["estimator"]
    coef = np.asarray(linear.coef_, np.float64)
    intercept = np.asarray(linear.intercept_, np.float64).reshape(-1)
    scale = np.asarray(scaler.scale_, np.float64)
    mean = np.asarray(scaler.mean_, np.float64)
    kernel = (coef / scale).T  # (channels, outputs)
    bias = intercept - (coef / scale) @ mean
    dense = classifier.head.get_layer("predictions")
    units = dense.kernel.shape[-1]
    if kernel.shape[1] == 1 and units == 2:  # a binary estimator, a two-way softmax head
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)
        bias = np.concatenate([[0.0], bias])
    if kernel.shape != tuple(dense.kernel.shape):
        raise ValueError(f"The estimator has {kernel.shape} coefficients; the head takes "
                         f"{tuple(dense.kernel.shape)}.")
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


def _check_plain_head(classifier):
    names = [layer.name for layer in classifier.head.layers]
    if "avg_pool" not in names or any(name.startswith("hidden_") for name in names):
        raise ValueError(
            "A linear estimator is copied into a head of average pooling and one dense layer: build "
            "the classifier with pooling='avg' and no hidden_units.")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
