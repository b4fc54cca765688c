"""`export`: the files a mobile team ships, verified against the Keras model."""

import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.data.splits import ImageSplits
from transfer_tf.exporting.metadata import add_metadata
from transfer_tf.exporting.parity import (
    compare, format_parity, median_ms, tflite_latency_ms, tflite_scores,
)
from transfer_tf.exporting.saved_model import (
    SERVING_INPUT, SERVING_OUTPUT, serving_model, write_saved_model,
)
from transfer_tf.exporting.tflite import PRECISIONS, TFLiteConfig, convert, flex_ops, operators
from transfer_tf.precision import float32_copy
from transfer_tf.saving import (
    LABELS_FILE, METRICS_FILE, MODEL_FILE, labels_text, package_versions, read_json,
)

EXPORT_DIR = "export"
SAVED_MODEL_DIR = "saved_model"
MODEL_CARD_FILE = "model_card.json"
PARITY_FILE = "parity.json"
DEFAULT_PARITY_IMAGES = 1000
DEFAULT_LATENCY_REPEATS = 50


@dataclasses.dataclass
class ExportResult:
    """What `export` wrote.

    Attributes:
        directory: `Path`. The export folder.
        files: dict. Artefact name (`"keras"`, `"saved_model"`,
            `"float32"`, ...) to its path.
        parity: list of dict. One row per artefact: `artefact`, `file`,
            `size_bytes`, `agreement`, `max_abs_diff`, `mean_abs_diff`,
            `accuracy`, `latency_ms`.
        model_card: dict. The contents of `model_card.json`.
    """

    directory: Path
    files: dict
    parity: list
    model_card: dict

    def parity_table(self):
        """The parity rows as a printable table."""
        return format_parity(self.parity)


def export(
    model,
    out=None,
    *,
    precisions=PRECISIONS,
    data=None,
    allow_flex_ops=False,
    name=None,
    description=None,
    version="1",
    num_parity_images=DEFAULT_PARITY_IMAGES,
    latency_repeats=DEFAULT_LATENCY_REPEATS,
    overwrite=False,
    verbose=1,
):
    """Exports a classifier as SavedModel, TFLite and `.keras`, and checks each.

    Every artefact takes raw RGB pixels in [0, 255] (the preprocessing is
    inside) and returns one score per class in `labels.txt` order. The
    `.tflite` files carry metadata (labels, normalisation, name, version)
    that MediaPipe Tasks' `ImageClassifier` reads as they are. Each artefact
    is run on held-out images and compared with the Keras model; the
    results go to `parity.json` and `model_card.json`.

    A classifier built with a mixed-precision `dtype` is exported as a
    float32 copy with the same weights (`precision.float32_copy`), and every
    artefact is checked against that copy.

    Files are written to a temporary folder beside `out` and moved into
    place only when everything succeeded: a failed export leaves nothing.

    Args:
        model: `ImageClassifier`, or str/path of a run folder.
        out: str or path. The export folder. Defaults to `RUN/export` for a
            run folder; required for a classifier.
        precisions: sequence of `TFLiteConfig` or precision names
            (`"float32"`, `"float16"`, `"dynamic_range"`, `"int8"`).
            Defaults to all four.
        data: `ImageSplits` or `None`. Its test split (or validation split
            when there is no test split) checks parity; its training images
            calibrate int8 unless the config brings its own. Defaults to
            `None`, which re-reads a run folder's own data and split (see
            `data.json`).
        allow_flex_ops: bool. Whether a model needing TensorFlow ops outside
            LiteRT's built-ins may be exported with Flex ops, which the
            LiteRT mobile runtimes cannot run without the Flex delegate.
            Such files are listed in the model card but not run (no Flex
            delegate here). Defaults to `False`.
        name: str or `None`. The model name in the metadata. Defaults to the
            run folder's name, or the classifier's name.
        description: str or `None`. Defaults to a sentence naming the
            backbone, input size and classes.
        version: str. The model version in the metadata. Defaults to `"1"`.
        num_parity_images: int. At most this many held-out images check
            parity. Defaults to `1000`.
        latency_repeats: int. Single-image runs per artefact; the median is
            reported (LiteRT interpreter on every core; Keras through
            `predict_on_batch`). Defaults to `50`.
        overwrite: bool. Whether an existing export folder may be replaced.
            Defaults to `False`.
        verbose: int. 0 silent, 1 a line per step. Defaults to `1`.

    Returns:
        `ExportResult`.

    Raises:
        FileNotFoundError: for a missing or incomplete run folder.
        FileExistsError: if `out` exists and `overwrite` is False.
        PermissionError: if `out` cannot be written.
        ValueError: for an unknown precision, int8 without calibration
            images, no held-out images, classes that do not match the
            model's, or a failed conversion.
        FlexOpsRequiredError: if the model needs Flex ops and
            `allow_flex_ops` is False.

    Example:

    >>> result = transfer_tf.export("saved_models/flowers")   # doctest: +SKIP
    >>> print(result.parity_table())                          # doctest: +SKIP
    """
    configs = _configs(precisions)
    _check_positive(num_parity_images=num_parity_images, latency_repeats=latency_repeats)
    trained, run = _classifier_and_run(model)
    classifier = float32_copy(trained)
    if out is None:
        if run is None:
            raise ValueError("Pass `out`, the folder to export to, when exporting a classifier object.")
        out = run / EXPORT_DIR
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists. Choose another folder or pass overwrite=True (--overwrite).")
    if data is None and run is not None:
        from transfer_tf.workflows import run_splits

        data = run_splits(run, verbose=bool(verbose))
    held_out, calibration = _check_data(classifier, data, configs, num_parity_images)
    say = print if verbose else (lambda *a, **k: None)
    if classifier is not trained:
        say(f"The classifier computes in {trained.dtype_policy.name}; exporting a float32 copy with "
            "the same weights, which the converter then stores at each precision asked for "
            "(LiteRT has no bfloat16 kernels). Parity is checked against that copy.")

    staging = _staging_folder(out)
    try:
        files, card = _write_all(
            classifier, staging, configs, calibration, held_out, data,
            allow_flex_ops=allow_flex_ops, latency_repeats=latency_repeats,
            metadata=dict(
                name=name or (run.name if run is not None else classifier.name),
                description=description or _description(classifier), version=str(version),
            ),
            run=run, trained_dtype_policy=trained.dtype_policy.name, say=say,
        )
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = {key: out / path.relative_to(staging) for key, path in files.items()}
    say(f"Exported to {out}")
    return ExportResult(directory=out, files=files, parity=card["parity"], model_card=card)


def _write_all(classifier, staging, configs, calibration, held_out, data, *, allow_flex_ops,
               latency_repeats, metadata, run, trained_dtype_policy, say):
    images, labels, _ = held_out
    serving = serving_model(classifier)
    reference = serving.predict(images, batch_size=32, verbose=0)
    one_image = images[:1]
    keras.Model.save(classifier, staging / MODEL_FILE)
    (staging / LABELS_FILE).write_text(labels_text(classifier.class_names))
    files = {"keras": staging / MODEL_FILE}
    rows = [_row(
        "keras", MODEL_FILE, staging / MODEL_FILE,
        compare(reference, reference, labels, classifier.task),
        median_ms(lambda: serving.predict_on_batch(one_image), latency_repeats),
    )]

    start = time.perf_counter()
    write_saved_model(serving, classifier.class_names, staging / SAVED_MODEL_DIR)
    loaded = tf.saved_model.load(str(staging / SAVED_MODEL_DIR))
    signature = loaded.signatures["serving_default"]

    def saved_model_scores(batch):
        return signature(**{SERVING_INPUT: tf.constant(batch)})[SERVING_OUTPUT].numpy()

    scores = np.concatenate([saved_model_scores(images[i:i + 32]) for i in range(0, len(images), 32)])
    rows.append(_row(
        "saved_model", SAVED_MODEL_DIR, staging / SAVED_MODEL_DIR,
        compare(reference, scores, labels, classifier.task),
        median_ms(lambda: saved_model_scores(one_image), latency_repeats),
    ))
    files["saved_model"] = staging / SAVED_MODEL_DIR
    say(f"  SavedModel written and checked ({time.perf_counter() - start:.1f} s)")

    quantization = []
    for config in configs:
        start = time.perf_counter()
        calibration_images = calibration.get(config.name)
        model_bytes = convert(
            staging / SAVED_MODEL_DIR, config, calibration_images, allow_flex_ops=allow_flex_ops,
        )
        model_bytes = add_metadata(
            model_bytes, **metadata, author=f"transfer_tf {package_versions()['transfer_tf']}",
            class_names=classifier.class_names, image_size=classifier.image_size,
        )
        path = staging / config.filename
        path.write_bytes(model_bytes)
        files[config.name] = path
        flex = flex_ops(model_bytes)
        if flex:
            # Neither ai-edge-litert nor tf.lite links the Flex delegate, so
            # such a file cannot be run here; say so rather than guess.
            say(f"  warning: {config.filename} uses Flex ops {flex}: not checked here, and "
                "LiteRT on Android/iOS runs it only with the Flex delegate linked.")
            rows.append(_row(config.name, config.filename, path, dict.fromkeys(
                ("agreement", "max_abs_diff", "mean_abs_diff", "accuracy")), None))
        else:
            rows.append(_row(
                config.name, config.filename, path,
                compare(reference, tflite_scores(model_bytes, images), labels, classifier.task),
                tflite_latency_ms(model_bytes, one_image, latency_repeats),
            ))
        quantization.append({
            "artefact": config.name, "file": config.filename, "precision": config.precision,
            "input_dtype": "uint8" if config.integer_io else "float32",
            "output_dtype": "uint8" if config.integer_io else "float32",
            "calibration_images": None if calibration_images is None else len(calibration_images),
            "operators": operators(model_bytes), "flex_ops": flex,
        })
        say(f"  {config.filename} written and checked ({time.perf_counter() - start:.1f} s)")

    card = _model_card(classifier, metadata, rows, quantization, data, held_out, run)
    card["trained_dtype_policy"] = trained_dtype_policy
    parity = {"held_out": card["metrics"]["held_out"], "rows": rows}
    (staging / PARITY_FILE).write_text(json.dumps(parity, indent=2) + "\n")
    (staging / MODEL_CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    say(format_parity(rows))
    return files, card


def _row(artefact, file, path, comparison, latency_ms):
    return {"artefact": artefact, "file": file, "size_bytes": _size_of(path),
            **comparison, "latency_ms": latency_ms}


def _size_of(path):
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _model_card(classifier, metadata, rows, quantization, data, held_out, run):
    from ai_edge_litert import __version__ as litert_version

    height, width = classifier.image_size
    record = classifier.training_record
    run_metrics = None
    if run is not None and (run / METRICS_FILE).is_file():
        run_metrics = read_json(run / METRICS_FILE)
    return {
        **metadata,
        "backbone": classifier.backbone_name,
        "task": classifier.task,
        "labels": list(classifier.class_names),
        "input": {
            "name": SERVING_INPUT, "shape": [1, height, width, 3], "channels": "RGB",
            "value_range": [0, 255],
            "dtype": "float32 (TFLite, SavedModel serving_default) or uint8 "
                     "(SavedModel serving_uint8, int8 TFLite with integer I/O)",
            "normalisation": f"inside the model ({classifier.preprocessing})",
            "resize": (data.source.get("resize", "stretch") if data is not None else "stretch"),
        },
        "output": {
            "name": SERVING_OUTPUT, "shape": [1, len(classifier.class_names)],
            "meaning": ("independent sigmoid scores" if classifier.task == "multilabel"
                        else "class probabilities"),
        },
        "metrics": {
            "held_out": {"split": held_out[2], "images": len(held_out[0]),
                         "keras_accuracy": rows[0]["accuracy"]},
            "run": run_metrics,
        },
        "training": None if record is None else record.settings,
        "quantization": quantization,
        "files": {row["file"]: row["size_bytes"] for row in rows},
        "parity": rows,
        "versions": {**package_versions(), "ai_edge_litert": litert_version},
    }


def _description(classifier):
    height, width = classifier.image_size
    names = ", ".join(classifier.class_names[:10]) + (", ..." if classifier.num_classes > 10 else "")
    base = classifier.backbone_name or "custom"
    return (f"{base} image classifier fine-tuned with transfer_tf: {height}x{width} RGB images "
            f"(raw 0-255 pixels) to {classifier.num_classes} classes ({names}).")


def _configs(precisions):
    if isinstance(precisions, (str, TFLiteConfig)):
        precisions = [precisions]
    configs = [TFLiteConfig.from_name(p) for p in precisions]
    names = [c.name for c in configs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"Each precision may appear once. Received twice: {duplicated}")
    return configs


def _check_positive(**values):
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an int >= 1. Received: {key}={value!r}")


def _classifier_and_run(model):
    from transfer_tf.model import ImageClassifier
    from transfer_tf.saving import load

    if isinstance(model, ImageClassifier):
        return model, None
    if not isinstance(model, (str, Path)):
        raise TypeError(
            f"model must be an ImageClassifier or a run folder path. Received: {type(model).__name__}"
        )
    run = Path(model)
    if not run.is_dir():
        raise FileNotFoundError(f"No run folder at {run}. Pass the folder `transfer-tf train --out` or clf.save() wrote.")
    classifier = load(run)
    if not isinstance(classifier, ImageClassifier):
        raise ValueError(f"{run} does not hold a transfer_tf ImageClassifier.")
    return classifier, run


def _check_data(classifier, data, configs, num_parity_images):
    """Held-out `(images, labels, split)` and int8 calibration images per config."""
    if data is None:
        raise ValueError(
            "export needs held-out images to check the exported models against Keras. Pass "
            "data=ImageSplits (e.g. ttf.data.from_directory(...)), or --data DIR on the command "
            "line; a run folder trained on a directory or ELPV re-reads its own data."
        )
    if not isinstance(data, ImageSplits):
        raise TypeError(
            "data must be an ImageSplits (from ttf.data.from_directory, from_arrays, ...). "
            f"Received: {type(data).__name__}"
        )
    if list(data.class_names) != list(classifier.class_names):
        raise ValueError(
            f"The data's classes {list(data.class_names)} differ from the model's "
            f"{list(classifier.class_names)}."
        )
    split = "test" if data.test is not None else "validation"
    dataset = data.test if data.test is not None else data.validation
    if dataset is None:
        raise ValueError(
            "The data has no validation or test images to check the export on. Split some off "
            "(validation_split > 0)."
        )
    images, labels = _take(dataset, num_parity_images, classifier.image_size)
    calibration = {}
    for config in configs:
        if config.precision == "int8":
            source = config.representative_data
            if source is None:
                source = data.train
            if source is None:
                raise ValueError("int8 needs representative images and the data has no training split.")
            calibration[config.name] = _take(source, config.num_calibration_images, classifier.image_size)[0]
    return (images, labels, split), calibration


def _take(source, limit, image_size):
    """Up to `limit` images (float32) and labels from an array or a dataset."""
    if isinstance(source, np.ndarray):
        images = np.asarray(source[:limit], np.float32)
        _check_image_shape(images, image_size)
        return images, None
    images, labels = [], []
    count = 0
    for element in source:
        batch, batch_labels = element if isinstance(element, (tuple, list)) else (element, None)
        batch = np.asarray(batch, np.float32)
        if batch.ndim == 3:
            batch = batch[None]
            batch_labels = None if batch_labels is None else np.asarray(batch_labels)[None]
        images.append(batch)
        if batch_labels is not None:
            labels.append(np.asarray(batch_labels))
        count += len(batch)
        if count >= limit:
            break
    if not images:
        raise ValueError("The representative or held-out data holds no images.")
    images = np.concatenate(images)[:limit]
    _check_image_shape(images, image_size)
    return images, (np.concatenate(labels)[:limit] if labels else None)


def _check_image_shape(images, image_size):
    expected = (*image_size, 3)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"Images must be raw RGB pixels of shape (N, {expected[0]}, {expected[1]}, 3), the "
            f"model's input. Received shape {images.shape}."
        )


def _staging_folder(out):
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as error:
        raise PermissionError(f"Cannot write to {out.parent} ({error.strerror}). Choose another --out folder.") from None


def _move_into_place(staging, out):
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        out.rename(old / out.name)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)
