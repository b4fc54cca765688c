"""transfer_tf: transfer learning with Keras 3 and TensorFlow.

A pretrained `keras.applications` backbone (or EfficientNet-Lite, with its
ImageNet weights offline), a small head, a two-phase trainer that keeps
BatchNorm frozen, data loaders that survive bad files, run folders that load
safely with plots and a report, a comparison against training from scratch,
and exports (SavedModel, TFLite with metadata) checked against the Keras
model. `transfer-tf` is the command line.

`import transfer_tf` is quick: it loads no TensorFlow. Each public name
loads its module on first use. Before TensorFlow loads, the package sets
TensorFlow's fastest safe CPU settings where the user has not set them (see
`cpu_settings`).
"""

import importlib

__version__ = "0.2.0"

from transfer_tf.core.cpu_settings import apply_defaults as _apply_cpu_defaults  # noqa: E402

_apply_cpu_defaults()

# Public name -> the module that defines it, by layer (bottom first; see docs/explanation/layout.md).
_PUBLIC = {
    "keras_cache_dir": "core.cache_dirs",
    "cpu_summary": "core.cpu_settings",
    "WeightsNotAvailableError": "core.errors",
    "Block": "backbones.blocks", "block_layers": "backbones.blocks", "split_base": "backbones.blocks",
    "ImagePreprocessing": "backbones.preprocessing",
    "BackboneSpec": "backbones.registry", "get_backbone": "backbones.registry",
    "list_backbones": "backbones.registry",
    "ImageClassifier": "model.classifier",
    "all_layers": "model.freezing", "is_batchnorm": "model.freezing",
    "build_head": "model.head",
    "TemperatureScaling": "model.temperature",
    "float32_copy": "model.precision",
    "FineTuneResult": "model.records", "PhaseResult": "model.records",
    "save": "model.saving",
    "find_lr": "training.lr_finder", "LRFinderResult": "training.lr_finder",
    "train_from_scratch": "training.scratch",
    "DataSettings": "training.settings", "FineTuneSettings": "training.settings",
    "ModelSettings": "training.settings", "ScratchSettings": "training.settings",
    "fine_tune": "training.two_phase",
    "batchnorm_statistics": "methods.adabn", "reestimate_batchnorm": "methods.adabn",
    "adapt": "methods.adaptation",
    "extract_features": "methods.classical", "fit_classical": "methods.classical",
    "EstimatorClassifier": "methods.estimator_classifier",
    "load": "methods.loading",
    "pretrain": "methods.pretraining", "PretrainResult": "methods.pretraining",
    "transferability": "methods.transferability", "Transferability": "methods.transferability",
    "rank_bases": "methods.base_ranking", "RankedBase": "methods.base_ranking",
    "Audit": "auditing.folder_audit", "audit": "auditing.folder_audit",
    "calibrate": "evaluation.calibration", "CalibrationResult": "evaluation.calibration",
    "compare": "evaluation.comparison", "ComparisonResult": "evaluation.comparison",
    "classification_metrics": "evaluation.metrics",
    "grad_cam": "evaluation.grad_cam",
    "Interpretation": "evaluation.interpretation", "interpret": "evaluation.interpretation",
    "evaluate": "evaluation.predictions", "predict_dataset": "evaluation.predictions",
    "Predictions": "evaluation.predictions",
    "predict_labels": "evaluation.unknown",
    "write_report": "evaluation.report",
    "export": "exporting", "ExportResult": "exporting", "FlexOpsRequiredError": "exporting",
    "TFLiteConfig": "exporting", "bench": "exporting", "Bench": "exporting",
    "predict_files": "cli.jobs.predict",
    "auto": "cli.jobs.auto_choice", "AutoResult": "cli.jobs.auto_choice",
}
_SUBMODULES = {"data": "data", "plots": "evaluation.plots"}

__all__ = sorted([*_PUBLIC, *_SUBMODULES])


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{_SUBMODULES[name]}")
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
