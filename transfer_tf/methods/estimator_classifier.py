"""A non-linear classical head kept as a scikit-learn estimator: `EstimatorClassifier`, and its run folder.

Its run folder keeps the estimator in skops format (scikit-learn's own
recommendation; never a plain pickle), whose loader refuses every type not
on an explicit list.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.model.saving import CONFIG_FILE, ESTIMATOR_FILE, read_json, save

# Types skops does not trust by default that the estimators below contain.
TRUSTED_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
)



class EstimatorClassifier:
    """A frozen base and a non-linear scikit-learn estimator on its pooled features.

    It predicts and evaluates like an `ImageClassifier` (`predict`,
    `predict_on_batch`, `__call__`, `class_names`, `task`, `image_size`), saves to a run folder
    (`estimator.skops` beside the base) and loads with `transfer_tf.load`.
    It cannot be exported to TFLite or SavedModel: a kernel SVM or k-NN has
    no LiteRT ops.

    Args:
        classifier: `ImageClassifier`. Its base and preprocessing are used.
        estimator: a fitted scikit-learn estimator (or `Pipeline`) with
            `predict_proba`.
        name: str. The estimator's registry name (`"rbf_svm"`, `"knn"`).
    """

    def __init__(self, classifier, estimator, name):
        self.classifier = classifier
        self.estimator = estimator
        self.estimator_name = name
        self.training_record = None
        self.pool = keras.layers.GlobalAveragePooling2D()

    class_names = property(lambda self: self.classifier.class_names)
    num_classes = property(lambda self: self.classifier.num_classes)
    image_size = property(lambda self: self.classifier.image_size)
    backbone_name = property(lambda self: self.classifier.backbone_name)
    task = "multiclass"

    def features(self, images):
        return np.asarray(self.pool(self.classifier.extract_features(images)))

    def __call__(self, images, training=False):
        return tf.constant(self.estimator.predict_proba(self.features(images)), tf.float32)

    def predict_on_batch(self, images):
        return np.asarray(self(images))

    def predict(self, images, batch_size=32, verbose=0):
        images = np.asarray(images)
        return np.concatenate([np.asarray(self(images[i:i + batch_size]))
                               for i in range(0, len(images), batch_size)])

    def save(self, directory, overwrite=True, *, data_summary=None):
        """Writes the run folder: the base's classifier, `estimator.skops`, and the record."""
        import skops.io as sio

        return save(self.classifier, directory, overwrite=overwrite, data_summary=data_summary,
                    record=self.training_record, extra_files={ESTIMATOR_FILE: sio.dumps(self.estimator)},
                    extra_config={"classical_head": {"estimator": self.estimator_name,
                                                     "file": ESTIMATOR_FILE}})


def load_estimator(path):
    """Reads an `estimator.skops` file, refusing any type not on `TRUSTED_TYPES`.

    Raises:
        ValueError: if the file holds a type that is not trusted (loading it
            could run code), or is not a skops file.
    """
    import skops.io as sio

    data = Path(path).read_bytes()
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as error:  # skops raises several kinds for a damaged file
        raise ValueError(f"{path} is not a readable skops file ({type(error).__name__}: {error}).") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise ValueError(
            f"{path} holds types transfer_tf does not trust: {', '.join(refused)}. Loading it could run "
            "code; it was refused. Fit the estimator again with transfer_tf (or inspect the file with "
            "skops.io.get_untrusted_types).")
    return sio.loads(data, trusted=list(untrusted))


def wrap_if_classical(model, folder):
    """The run folder's model as it was trained: an `EstimatorClassifier` when its config says so."""
    config = read_json(Path(folder) / CONFIG_FILE)
    head = config.get("classical_head")
    if not head:
        return model
    wrapped = EstimatorClassifier(model, load_estimator(Path(folder) / head["file"]), head["estimator"])
    wrapped.training_record = model.training_record
    return wrapped
