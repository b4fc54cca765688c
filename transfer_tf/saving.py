"""Run folders: save a classifier with its labels, config and history; load it.

A run folder holds `model.keras` (loaded with Keras's `safe_mode` on, so it
cannot run code), `labels.txt` (one class name per line), `config.json`
(backbone, image size, weights source, task, classes, training settings,
package versions) and, once trained, `history.json`.
"""

import json
import os
import platform
import shutil
import tempfile
import zipfile
from pathlib import Path

import keras

from transfer_tf._text import first_line

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
DATA_FILE = "data.json"
METRICS_FILE = "metrics.json"
FORMAT_VERSION = 1


def package_versions():
    """Returns the versions of Python and the packages a run depends on."""
    import numpy
    import tensorflow

    import transfer_tf

    return {
        "transfer_tf": transfer_tf.__version__,
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def save(classifier, directory, *, overwrite=True, data_summary=None):
    """Writes a classifier's run folder.

    Files are written to a temporary folder beside `directory` first and
    moved into place only when all are complete, so a failure leaves no
    half-written run behind.

    Args:
        classifier: `ImageClassifier`.
        directory: str or path. The run folder; created if needed.
        overwrite: bool. Whether to replace the files of an existing run
            folder. Defaults to `True`.
        data_summary: dict or `None`. What the model was trained on (e.g.
            `ImageSplits.to_dict()`: source, split settings, class counts,
            skipped files), written to `data.json`. Defaults to `None`.

    Returns:
        The run folder as a `Path`.

    Raises:
        FileExistsError: if `directory` holds a run and `overwrite` is False.
        ValueError: if `directory` is an existing file.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"A run folder path must be a folder, not a file. Received: {directory}")
    if (directory / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(
            f"{directory} already holds a saved model; pass overwrite=True to replace it."
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        keras.Model.save(classifier, staging / MODEL_FILE)
        (staging / LABELS_FILE).write_text(labels_text(classifier.class_names))
        record = classifier.training_record
        _write_json(staging / CONFIG_FILE, _run_config(classifier, record))
        if record is not None:
            _write_json(staging / HISTORY_FILE, record.to_dict())
        if data_summary is not None:
            _write_json(staging / DATA_FILE, data_summary)
        if not directory.exists():
            staging.rename(directory)
        else:
            for name in (HISTORY_FILE, DATA_FILE):
                stale = directory / name
                if not (staging / name).exists() and stale.exists():
                    stale.unlink()
            # config.json last: its presence marks a complete folder.
            for name in (MODEL_FILE, LABELS_FILE, HISTORY_FILE, DATA_FILE, CONFIG_FILE):
                if (staging / name).exists():
                    os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def load(path):
    """Loads a classifier from a run folder (or a single `.keras` file).

    Keras's `safe_mode` stays on: a model that would need to deserialise
    Python code (a `Lambda` layer) is refused, so opening someone else's run
    folder never runs code from it.

    Args:
        path: str or path. A run folder written by `save`, or a `.keras` file.

    Returns:
        The `ImageClassifier` (or, for a `.keras` file of another model, that
        `keras.Model`). A classifier loaded from a trained run carries its
        `training_record`.

    Raises:
        FileNotFoundError: if `path` does not exist or the folder lacks
            `model.keras`.
        ValueError: if a file of the run is damaged.

    Example:

    >>> clf.save("saved_models/flowers")          # doctest: +SKIP
    >>> same = transfer_tf.load("saved_models/flowers")  # doctest: +SKIP
    """
    from transfer_tf.model import ImageClassifier
    from transfer_tf.training import FineTuneResult

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No transfer_tf run folder or .keras file at {path}.")
    if path.is_dir():
        model_file = path / MODEL_FILE
        if not model_file.is_file():
            raise FileNotFoundError(
                f"{path} is not a complete transfer_tf run folder: {MODEL_FILE} is "
                "missing. Point to the folder that clf.save() or "
                "`transfer-tf train --out` wrote."
            )
        read_json(path / CONFIG_FILE)  # a damaged config is an error too
    else:
        model_file = path
    try:
        model = keras.saving.load_model(model_file, safe_mode=True)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"Could not load {model_file}: the file is damaged or is not a model "
            f"saved by transfer_tf ({first_line(error)}). Save the model again."
        ) from None
    history_file = path / HISTORY_FILE if path.is_dir() else None
    if isinstance(model, ImageClassifier) and history_file and history_file.is_file():
        model.training_record = FineTuneResult.from_dict(read_json(history_file))
    return model


def _run_config(classifier, record):
    return {
        "format_version": FORMAT_VERSION,
        "backbone": classifier.backbone_name,
        "image_size": list(classifier.image_size),
        "input": {"dtype": "float32 or uint8", "range": [0, 255], "channels": "RGB"},
        "preprocessing": classifier.preprocessing,
        "dtype_policy": classifier.dtype_policy.name,
        "weights": classifier.weights_source,
        "task": classifier.task,
        "class_names": classifier.class_names,
        "training": None if record is None else record.settings,
        "versions": package_versions(),
    }


def labels_text(class_names):
    """The contents of `labels.txt`: one class name per line, in label order."""
    return "\n".join(class_names) + "\n"


def _write_json(path, data):
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path):
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} is not a complete run folder: {path.name} is missing.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged ({error}). Save the model again.") from None

