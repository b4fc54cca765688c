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

__version__ = "0.1.0"

from transfer_tf.cpu_settings import apply_defaults as _apply_cpu_defaults  # noqa: E402

_apply_cpu_defaults()

# Public name -> the module that defines it.
_PUBLIC = {
    "adapt": "adaptation", "batchnorm_statistics": "adaptation", "reestimate_batchnorm": "adaptation",
    "EstimatorClassifier": "classical", "extract_features": "classical", "fit_classical": "classical",
    "BackboneSpec": "backbones", "Block": "backbones", "block_layers": "backbones",
    "get_backbone": "backbones", "list_backbones": "backbones", "split_base": "backbones",
    "keras_cache_dir": "cache_dirs",
    "ComparisonResult": "comparison", "compare": "comparison",
    "cpu_summary": "cpu_settings",
    "WeightsNotAvailableError": "errors",
    "Predictions": "evaluation", "evaluate": "evaluation", "predict_dataset": "evaluation",
    "ExportResult": "exporting", "FlexOpsRequiredError": "exporting", "TFLiteConfig": "exporting",
    "export": "exporting",
    "all_layers": "freezing", "is_batchnorm": "freezing",
    "build_head": "head",
    "classification_metrics": "metrics",
    "ImageClassifier": "model", "load": "runs",
    "float32_copy": "precision",
    "ImagePreprocessing": "preprocessing",
    "FineTuneResult": "records", "PhaseResult": "records",
    "write_report": "report",
    "save": "saving",
    "train_from_scratch": "scratch",
    "DataSettings": "settings", "FineTuneSettings": "settings", "ModelSettings": "settings",
    "ScratchSettings": "settings",
    "fine_tune": "training",
    "find_lr": "lr_finder", "LRFinderResult": "lr_finder",
    "pretrain": "pretraining", "PretrainResult": "pretraining",
    "predict_files": "workflows",
}
_SUBMODULES = ("data", "plots")

__all__ = sorted([*_PUBLIC, *_SUBMODULES])


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
