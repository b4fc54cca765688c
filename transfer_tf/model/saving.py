"""Run folders: the files a classifier is saved as, written safely, read safely.

A run folder holds `model.keras` (loaded with Keras's `safe_mode` on, so it
cannot run code), `labels.txt` (one class name per line), `config.json`
(backbone, image size, weights source, task, classes, training settings,
package versions) and, once trained, `history.json`.
"""

import json
import platform
import zipfile
from importlib import metadata
from pathlib import Path

import keras

from transfer_tf import __version__
from transfer_tf.core.cpu_settings import cpu_summary
from transfer_tf.core.integrity import DamagedFileError, damage, fingerprint
from transfer_tf.core.staging import staged_folder
from transfer_tf.core.text import first_line

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
DATA_FILE = "data.json"
METRICS_FILE = "metrics.json"
ESTIMATOR_FILE = "estimator.skops"
CALIBRATION_FILE = "calibration.json"
AUTO_FILE = "auto.json"
FORMAT_VERSION = 1


def package_versions():
    """Returns the versions of Python and the packages a run depends on."""
    return {
        "transfer_tf": __version__,
        **{name: metadata.version(name) for name in ("tensorflow", "keras", "numpy")},
        "python": platform.python_version(),
    }


def save(classifier, directory, *, overwrite=True, data_summary=None, record=None, extra_files=None,
         extra_config=None):
    """Writes a classifier's run folder.

    Files are written to a temporary folder beside `directory` first and
    moved into place only when all are complete (`config.json` last), so a
    failure leaves no half-written run behind. Other files of an existing
    run folder (plots, the report, an export) are kept.

    Args:
        classifier: `ImageClassifier`.
        directory: str or path. The run folder; created if needed.
        overwrite: bool. Whether to replace the files of an existing run
            folder. Defaults to `True`.
        data_summary: dict or `None`. What the model was trained on (e.g.
            `ImageSplits.to_dict()`: source, split settings, class counts,
            skipped files), written to `data.json`. Defaults to `None`.
        record: `FineTuneResult` or `None`. The training record to write;
            defaults to the classifier's own.
        extra_files: dict of file name to bytes, or `None`. More files of the
            run (a classical head's estimator).
        extra_config: dict or `None`. More entries of `config.json`.

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
    record = classifier.training_record if record is None else record
    with staged_folder(directory, last=CONFIG_FILE,
                       remove=(HISTORY_FILE, DATA_FILE, ESTIMATOR_FILE, CALIBRATION_FILE, AUTO_FILE)) as staging:
        save_model_file(classifier, staging / MODEL_FILE)
        (staging / LABELS_FILE).write_text(labels_text(classifier.class_names))
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        # Checked by `load_run` before the files are read back.
        files = {name: fingerprint(staging / name) for name in (MODEL_FILE, *(extra_files or {}))}
        write_json(staging / CONFIG_FILE, {**_run_config(classifier, record), **(extra_config or {}),
                                           "files": files})
        if record is not None:
            write_json(staging / HISTORY_FILE, record.to_dict())
        if data_summary is not None:
            write_json(staging / DATA_FILE, data_summary)
    return directory


def save_model_file(model, path):
    """Writes `model` to a `.keras` file without its optimizer's state.

    Nothing reads that state back (`load_run` loads uncompiled; the trainers
    compile their own), and Adam's moments would triple the file. The model
    keeps its optimizer in memory.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        keras.Model.save(model, path)
        return
    model.optimizer = None
    try:
        keras.Model.save(model, path)
    finally:
        model.optimizer = optimizer


def verify_run(folder):
    """Checks the run folder's model files against the checksums its `config.json` recorded.

    Run folders of versions before checksums were recorded have none to
    check and pass.

    Raises:
        DamagedFileError: naming the file that is missing, truncated or
            changed since it was saved.
    """
    folder = Path(folder)
    for name, expected in read_json(folder / CONFIG_FILE).get("files", {}).items():
        reason = damage(folder / name, expected)
        if reason is not None:
            raise DamagedFileError(
                f"{folder / name} is damaged: {reason} since the run was saved (its checksum is in "
                f"{CONFIG_FILE}). Train or save the run again, or copy it again; if you changed the file "
                "on purpose, load it with --no-verify (verify=False).")


def load_run(path, verify=True):
    """Reads a run folder (or a single `.keras` file) with Keras's `safe_mode` on.

    Args:
        path: str or path.
        verify: bool. Check a run folder's files against the checksums in
            its `config.json` first (see `verify_run`). Defaults to `True`.

    Returns:
        `(model, history)`: the Keras model and the `history.json` data, or
        `None` when there is none.

    Raises:
        FileNotFoundError: if `path` does not exist or the folder lacks
            `model.keras`.
        ValueError: if a file of the run is damaged (`DamagedFileError` when
            it differs from its recorded checksum).
    """
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
        if verify:
            verify_run(path)
    else:
        model_file = path
    try:
        # compile=False: predicting, evaluating and exporting need no optimizer
        # state, and the trainers compile their own.
        model = keras.saving.load_model(model_file, safe_mode=True, compile=False)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"Could not load {model_file}: the file is damaged or is not a model "
            f"saved by transfer_tf ({first_line(error)}). Save the model again."
        ) from None
    history_file = path / HISTORY_FILE if path.is_dir() else None
    history = read_json(history_file) if history_file and history_file.is_file() else None
    return model, history


def write_metrics(run, metrics):
    """Writes `RUN/metrics.json` (through a partial file: never half-written)."""
    path = Path(run) / METRICS_FILE
    partial = path.with_name(f".{path.name}.partial")
    write_json(partial, metrics)
    partial.replace(path)
    return path


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
        "temperature": getattr(classifier, "temperature", 1.0),
        "unknown_threshold": getattr(classifier, "unknown_threshold", None),
        "training": None if record is None else record.settings,
        "versions": package_versions(),
        "machine": cpu_summary(),
    }


def labels_text(class_names):
    """The contents of `labels.txt`: one class name per line, in label order."""
    return "\n".join(class_names) + "\n"


def write_json(path, data):
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path):
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} is not a complete run folder: {path.name} is missing.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged ({error}). Save the model again.") from None

