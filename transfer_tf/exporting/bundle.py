"""`export`: the files a mobile team ships, verified against the Keras model."""

import dataclasses
import json
import time
from pathlib import Path

from transfer_tf.core.checks import check_int
from transfer_tf.core.integrity import checksum, write_checksums
from transfer_tf.core.staging import staged_folder
from transfer_tf.exporting.artefacts import (
    SAVED_MODEL_DIR,
    KerasArtefact,
    SavedModelArtefact,
    TFLiteArtefact,
)
from transfer_tf.exporting.held_out import held_out_and_calibration
from transfer_tf.exporting.parity import batched_scores, compare, format_parity, median_ms
from transfer_tf.exporting.saved_model import SERVING_INPUT, SERVING_OUTPUT, serving_model
from transfer_tf.exporting.tflite import PRECISIONS, TFLiteConfig
from transfer_tf.methods.estimator_classifier import EstimatorClassifier
from transfer_tf.methods.loading import load
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.precision import float32_copy
from transfer_tf.model.run_data import run_metrics, run_splits
from transfer_tf.model.saving import package_versions

EXPORT_DIR = "export"
MODEL_CARD_FILE = "model_card.json"
PARITY_FILE = "parity.json"
DEFAULT_PARITY_IMAGES = 1000
DEFAULT_LATENCY_REPEATS = 50
_UNCHECKED = dict.fromkeys(("agreement", "max_abs_diff", "mean_abs_diff", "accuracy"))


@dataclasses.dataclass
class ExportResult:
    """What `export` wrote.

    Attributes:
        directory: `Path`. The export folder.
        files: dict. Artefact name (`"keras"`, `"saved_model"`,
            `"float32"`, ...) to its path.
        parity: list of dict. One row per artefact: `artefact`, `file`,
            `size_bytes`, `sha256` (of a single file; a folder's files are
            in `SHA256SUMS`), `agreement`, `max_abs_diff`, `mean_abs_diff`,
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
    verify=True,
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
        verify: bool. Check a run folder's files against the checksums its
            `config.json` recorded before exporting it (see `load`).
            Defaults to `True`.
        verbose: int. 0 silent, 1 a line per step. Defaults to `1`.

    The export folder ends with `SHA256SUMS`, every file's checksum in
    `sha256sum`'s format, so the receiver can check what arrived.

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

    Examples:

        >>> result = transfer_tf.export("saved_models/flowers")   # doctest: +SKIP
        >>> print(result.parity_table())                          # doctest: +SKIP
    """
    configs = _configs(precisions)
    check_int("num_parity_images", num_parity_images, minimum=1)
    check_int("latency_repeats", latency_repeats, minimum=1)
    trained, run = _classifier_and_run(model, verify)
    classifier = float32_copy(trained)
    if out is None:
        if run is None:
            raise ValueError("Pass `out`, the folder to export to, when exporting a classifier object.")
        out = run / EXPORT_DIR
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists. Choose another folder or pass overwrite=True (--overwrite).")
    if data is None and run is not None:
        data = run_splits(run, verbose=bool(verbose))
    held_out, calibration = held_out_and_calibration(classifier, data, configs, num_parity_images)
    say = print if verbose else (lambda *a, **k: None)
    if classifier is not trained:
        say(f"The classifier computes in {trained.dtype_policy.name}; exporting a float32 copy with "
            "the same weights, which the converter then stores at each precision asked for "
            "(LiteRT has no bfloat16 kernels). Parity is checked against that copy.")
    metadata = dict(
        name=name or (run.name if run is not None else classifier.name),
        description=description or _description(classifier), version=str(version),
        author=f"transfer_tf {package_versions()['transfer_tf']}",
        class_names=classifier.class_names, image_size=classifier.image_size,
    )

    with staged_folder(out, replace_whole=True) as staging:
        serving = serving_model(classifier)
        artefacts = [KerasArtefact(classifier, serving), SavedModelArtefact(serving, classifier.class_names)]
        artefacts += [TFLiteArtefact(config, staging / SAVED_MODEL_DIR, calibration.get(config.name),
                                     metadata, allow_flex_ops=allow_flex_ops) for config in configs]
        rows, reference = [], None
        for artefact in artefacts:
            start = time.perf_counter()
            path = artefact.write(staging)
            row, scores = _parity_row(artefact, path, reference, held_out, classifier.task, latency_repeats)
            reference = scores if reference is None else reference  # the Keras model's, first
            rows.append(row)
            if row["agreement"] is None:
                say(f"  warning: {artefact.file} uses Flex ops {artefact.flex_ops}: not checked here, "
                    "and LiteRT on Android/iOS runs it only with the Flex delegate linked.")
            say(f"  {artefact.file} written and checked ({time.perf_counter() - start:.1f} s)")
        card = _model_card(classifier, trained, metadata, rows, artefacts, data, held_out, run)
        (staging / PARITY_FILE).write_text(
            json.dumps({"held_out": card["metrics"]["held_out"], "rows": rows}, indent=2) + "\n")
        (staging / MODEL_CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
        write_checksums(staging)  # last: an app team checks what it received with sha256sum -c
        say(format_parity(rows))
    say(f"Exported to {out}")
    return ExportResult(directory=out, files={a.name: out / a.file for a in artefacts},
                        parity=rows, model_card=card)


def _parity_row(artefact, path, reference, held_out, task, latency_repeats):
    """The artefact's parity with the reference scores (its own, for the Keras model)."""
    images, labels, _ = held_out
    row = {"artefact": artefact.name, "file": artefact.file, "size_bytes": _size_of(path),
           "sha256": None if path.is_dir() else checksum(path)}
    run = artefact.runner()
    if run is None:
        return {**row, **_UNCHECKED, "latency_ms": None}, None
    scores = batched_scores(run, images)
    reference = scores if reference is None else reference
    latency = median_ms(lambda: run(images[:1]), latency_repeats)
    return {**row, **compare(reference, scores, labels, task), "latency_ms": latency}, scores


def _size_of(path):
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _model_card(classifier, trained, metadata, rows, artefacts, data, held_out, run):
    from ai_edge_litert import __version__ as litert_version

    height, width = classifier.image_size
    record = classifier.training_record
    return {
        **{k: metadata[k] for k in ("name", "description", "version", "author")},
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
            "run": None if run is None else run_metrics(run),
        },
        "training": None if record is None else record.settings,
        "quantization": [a.record() for a in artefacts if a.record() is not None],
        "files": {row["file"]: row["size_bytes"] for row in rows},
        "parity": rows,
        "trained_dtype_policy": trained.dtype_policy.name,
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


def _classifier_and_run(model, verify):
    _refuse_estimator(model, "This classifier")
    if isinstance(model, ImageClassifier):
        return model, None
    if not isinstance(model, (str, Path)):
        raise TypeError(
            f"model must be an ImageClassifier or a run folder path. Received: {type(model).__name__}"
        )
    run = Path(model)
    if not run.is_dir():
        raise FileNotFoundError(f"No run folder at {run}. Pass the folder `transfer-tf train --out` or clf.save() wrote.")
    classifier = load(run, verify=verify)
    _refuse_estimator(classifier, str(run))
    if not isinstance(classifier, ImageClassifier):
        raise ValueError(f"{run} does not hold a transfer_tf ImageClassifier.")
    return classifier, run


def _refuse_estimator(model, what):
    if isinstance(model, EstimatorClassifier):
        raise ValueError(
            f"{what} has a non-linear scikit-learn head ({model.estimator_name}), which cannot be "
            "exported to TFLite or SavedModel: LiteRT has no ops for a kernel SVM or k-NN. Train a "
            "linear head instead (estimator 'logistic' or 'linear_svm', --head logistic), which "
            "becomes the classifier's Dense layer and exports like any other.")
