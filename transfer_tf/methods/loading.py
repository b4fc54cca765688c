"""Loading a run folder as the model it holds, whatever trained it."""

from pathlib import Path

from transfer_tf.methods.estimator_classifier import wrap_if_classical
from transfer_tf.model import classifier as keras_model


def load(path, strategy=None, verify=True):
    """Loads a classifier from a run folder (or a single `.keras` file).

    Keras's `safe_mode` stays on: a model that would need to deserialise
    Python code (a `Lambda` layer) is refused, so opening someone else's run
    folder never runs code from it. The model comes back uncompiled (no
    optimizer state): predicting, evaluating and exporting need none, and
    the trainers compile their own. A run with a non-linear classical head
    comes back as an `EstimatorClassifier`, its estimator read from skops
    with only trusted types.

    Args:
        path: str or path. A run folder written by `save`, or a `.keras` file.
        strategy: `tf.distribute.Strategy` or `None`. Loads the model in its
            scope, to train it further under it. Defaults to `None`.
        verify: bool. Check the run folder's files against the checksums
            its `config.json` recorded, and refuse a changed one
            (`DamagedFileError`); `False` for a file changed on purpose.
            Defaults to `True`.

    Returns:
        The `ImageClassifier` (or `EstimatorClassifier`; for a `.keras` file
        of another model, that `keras.Model`). A classifier loaded from a
        trained run carries its `training_record`.

    Raises:
        FileNotFoundError: if `path` does not exist or the folder lacks
            `model.keras`.
        ValueError: if a file of the run is damaged (`DamagedFileError`:
            changed since it was saved), or an estimator file holds
            untrusted types.

    Examples:

        >>> clf.save("saved_models/flowers")          # doctest: +SKIP
        >>> same = transfer_tf.load("saved_models/flowers")  # doctest: +SKIP
    """
    model = keras_model.load(path, strategy, verify=verify)
    return wrap_if_classical(model, path) if Path(path).is_dir() else model
