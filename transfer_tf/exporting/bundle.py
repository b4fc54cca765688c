"""`export`: the files a mobile team ships, verified against the Keras model."""

import dataclasses
import json
import tempfile
from pathlib import Path

from transfer_tf.core.checks import check_int
from transfer_tf.core.cpu_settings import cpu_summary
from transfer_tf.core.integrity import write_checksums
from transfer_tf.core.staging import staged_folder
from transfer_tf.exporting.artefacts import (
    KerasArtefact,
    OnnxArtefact,
    OpenVinoArtefact,
    SavedModelArtefact,
    TFLiteArtefact,
)
from transfer_tf.exporting.file_checks import write_and_check
from transfer_tf.exporting.formats import choose_formats
from transfer_tf.exporting.held_out import held_out_and_calibration
from transfer_tf.exporting.model_card import describe, model_card
from transfer_tf.exporting.parity import format_parity
from transfer_tf.exporting.runtimes import OPENVINO_CONFIG
from transfer_tf.exporting.saved_model import serving_model
from transfer_tf.exporting.tflite import PRECISIONS, TFLiteConfig
from transfer_tf.methods.estimator_classifier import EstimatorClassifier
from transfer_tf.methods.loading import load
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.inference import batch_function
from transfer_tf.model.precision import float32_copy
from transfer_tf.model.run_data import run_splits
from transfer_tf.model.saving import package_versions

EXPORT_DIR = "export"
MODEL_CARD_FILE = "model_card.json"
PARITY_FILE = "parity.json"
REPORT_FILE = "report.json"
DEFAULT_PARITY_IMAGES = 1000
DEFAULT_LATENCY_REPEATS = 50


@dataclasses.dataclass
class ExportResult:
    """What `export` wrote.

    Attributes:
        directory: `Path`. The export folder.
        files: dict. Artefact name (`"keras"`, `"saved_model"`,
            `"float32"`, ..., `"onnx"`, `"openvino"`) to its path.
        parity: list of dict. One row per artefact: `artefact`, `format`,
            `file`, `size_bytes`, `sha256` (of a single file; a folder's
            files are in `SHA256SUMS`), `agreement`, `max_abs_diff`,
            `mean_abs_diff`, `accuracy`, `balanced_accuracy` (on the
            held-out images), `latency_ms` and `latency_p90_ms` (batch 1,
            every core), `latency_1_thread_ms` and `latency_1_thread_p90_ms`
            (`None` for Keras and the SavedModel: TensorFlow's thread pools
            are fixed when it starts), and `failing` (see
            `max_accuracy_drop`).
        model_card: dict. The contents of `model_card.json`.
        skipped: list of str. Formats left out because their packages are
            missing, each with the pip command that adds it.
    """

    directory: Path
    files: dict
    parity: list
    model_card: dict
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def failing(self):
        """The artefacts that lost more held-out accuracy than `max_accuracy_drop` allowed."""
        return [row["artefact"] for row in self.parity if row.get("failing")]

    def parity_table(self):
        """The parity rows as a printable table."""
        return format_parity(self.parity)


def export(
    model,
    out=None,
    *,
    precisions=PRECISIONS,
    formats=None,
    data=None,
    allow_flex_ops=False,
    name=None,
    description=None,
    version="1",
    num_parity_images=DEFAULT_PARITY_IMAGES,
    latency_repeats=DEFAULT_LATENCY_REPEATS,
    max_accuracy_drop=None,
    overwrite=False,
    verify=True,
    verbose=1,
):
    """Exports a classifier as `.keras`, SavedModel, TFLite, ONNX and OpenVINO IR, and checks each.

    Every artefact takes raw RGB pixels in [0, 255] (the preprocessing is
    inside) and returns one score per class in `labels.txt` order. The
    `.tflite` files carry metadata (labels, normalisation, name, version)
    that MediaPipe Tasks' `ImageClassifier` reads as they are. Each artefact
    is run in its own runtime (LiteRT, onnxruntime, OpenVINO, TensorFlow) on
    held-out images: accuracy, balanced accuracy, agreement with the Keras
    model, score differences, size and latency at batch 1 on every core and
    on one. The results go to `report.json` (with the machine),
    `parity.json` and `model_card.json`.

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
            (`"float32"`, `"float16"`, `"dynamic_range"`, `"int8"`) of the
            TFLite files. Defaults to all four.
        formats: sequence of `"saved_model"`, `"tflite"`, `"onnx"`,
            `"openvino"`, or `None` for every format whose packages are
            installed (the others are listed in `ExportResult.skipped` with
            the pip command that adds them). A format asked for by name
            whose packages are missing is an error. `model.keras` is always
            written. Defaults to `None`.
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
        latency_repeats: int. Timed single-image runs per artefact and
            thread count, after a warm-up; the median and 90th percentile
            are reported. Defaults to `50`.
        max_accuracy_drop: float or `None`. Percentage points of held-out
            accuracy an artefact may lose against the Keras model; one that
            loses more is marked `failing` (files are still written; the
            command line exits non-zero). Defaults to `None` (no limit).
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
    chosen, skipped = choose_formats(formats)
    if "tflite" not in chosen:
        if configs and [c.name for c in configs] != list(PRECISIONS):  # [] agrees: no TFLite files
            raise ValueError(f"precisions choose TFLite files, which formats={list(formats)} leaves out: add "
                             f"'tflite' to formats. Received: precisions={[c.name for c in configs]}")
        configs = []
    check_int("num_parity_images", num_parity_images, minimum=1)
    if max_accuracy_drop is not None and not (isinstance(max_accuracy_drop, (int, float)) and max_accuracy_drop >= 0):
        raise ValueError(f"max_accuracy_drop must be a number of percentage points >= 0. "
                         f"Received: max_accuracy_drop={max_accuracy_drop!r}")
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
        description=description or describe(classifier), version=str(version),
        author=f"transfer_tf {package_versions()['transfer_tf']}",
        class_names=classifier.class_names, image_size=classifier.image_size,
    )

    for line in skipped:
        say(f"  {line}")

    with staged_folder(out, replace_whole=True) as staging, tempfile.TemporaryDirectory() as scratch:
        serving = serving_model(classifier)
        artefacts = _artefacts(classifier, serving, chosen, configs, calibration, metadata, allow_flex_ops)
        # TFLite is converted from the SavedModel: written outside the bundle when not asked for.
        rows = write_and_check(artefacts, staging, held_out, classifier.task, latency_repeats=latency_repeats,
                               max_accuracy_drop=max_accuracy_drop, asked_for=formats, skipped=skipped, say=say,
                               outside={} if "saved_model" in chosen else {"saved_model": Path(scratch)})
        written = {row["artefact"] for row in rows}
        artefacts = [a for a in artefacts if a.name in written]
        card = model_card(classifier, trained, metadata, rows, artefacts, data, held_out, run)
        (staging / PARITY_FILE).write_text(
            json.dumps({"held_out": card["metrics"]["held_out"], "rows": rows}, indent=2) + "\n")
        report = {"held_out": card["metrics"]["held_out"], "max_accuracy_drop": max_accuracy_drop,
                  "latency": {"batch_size": 1, "repeats": latency_repeats, "statistics": "median, 90th percentile"},
                  "runtime_settings": {"openvino": OPENVINO_CONFIG},
                  "machine": cpu_summary(), "skipped": skipped, "rows": rows}
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2, default=str) + "\n")
        (staging / MODEL_CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
        write_checksums(staging)  # last: an app team checks what it received with sha256sum -c
        say(format_parity(rows))
    say(f"Exported to {out}")
    return ExportResult(directory=out, files={a.name: out / a.file for a in artefacts},
                        parity=rows, model_card=card, skipped=skipped)


def _artefacts(classifier, serving, chosen, configs, calibration, metadata, allow_flex_ops):
    """The files to write, in order: the Keras model first (every check's reference)."""
    serving_run = batch_function(serving)  # traced once: the Keras row's check and the ONNX/OpenVINO conversions
    artefacts = [KerasArtefact(classifier, serving_run)]
    if "saved_model" in chosen or configs:
        saved_model = SavedModelArtefact(serving, classifier.class_names)
        artefacts.append(saved_model)
    artefacts += [TFLiteArtefact(config, saved_model, calibration.get(config.name), metadata,
                                 allow_flex_ops=allow_flex_ops) for config in configs]
    return artefacts + [kind(serving_run, serving.input_shape[1:])
                        for name, kind in (("onnx", OnnxArtefact), ("openvino", OpenVinoArtefact)) if name in chosen]


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
