"""transfer_tf: transfer learning with Keras 3 and TensorFlow.

A pretrained `keras.applications` backbone, a small head, a two-phase
trainer that keeps BatchNorm frozen, data loaders that survive bad files,
run folders that load safely with plots and a report, a comparison
against training from scratch, and exports (SavedModel, TFLite with
metadata) checked against the Keras model. `transfer-tf` is the command line.
"""

import os as _os

# TensorFlow's C++ start-up banners are noise for users of this library.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from transfer_tf._native_logs import load_tensorflow_quietly as _load_tensorflow  # noqa: E402

_load_tensorflow()

from transfer_tf import data, plots  # noqa: E402
from transfer_tf.backbones import BackboneSpec, Block, get_backbone, list_backbones  # noqa: E402
from transfer_tf.compare import ComparisonResult, compare  # noqa: E402
from transfer_tf.evaluation import Predictions, evaluate, predict_dataset  # noqa: E402
from transfer_tf.exporting import ExportResult, FlexOpsRequiredError, TFLiteConfig, export  # noqa: E402
from transfer_tf.head import build_head  # noqa: E402
from transfer_tf.model import ImageClassifier  # noqa: E402
from transfer_tf.metrics import classification_metrics  # noqa: E402
from transfer_tf.precision import float32_copy  # noqa: E402
from transfer_tf.preprocessing import ImagePreprocessing  # noqa: E402
from transfer_tf.report import write_report  # noqa: E402
from transfer_tf.saving import load, save  # noqa: E402
from transfer_tf.scratch import train_from_scratch  # noqa: E402
from transfer_tf.training import FineTuneResult, PhaseResult, fine_tune  # noqa: E402
from transfer_tf.cache_dirs import keras_cache_dir  # noqa: E402
from transfer_tf.errors import WeightsNotAvailableError  # noqa: E402

__all__ = [
    "BackboneSpec",
    "Block",
    "ComparisonResult",
    "ExportResult",
    "FineTuneResult",
    "FlexOpsRequiredError",
    "ImageClassifier",
    "ImagePreprocessing",
    "PhaseResult",
    "Predictions",
    "TFLiteConfig",
    "WeightsNotAvailableError",
    "build_head",
    "classification_metrics",
    "compare",
    "data",
    "evaluate",
    "export",
    "fine_tune",
    "float32_copy",
    "get_backbone",
    "keras_cache_dir",
    "list_backbones",
    "load",
    "plots",
    "predict_dataset",
    "save",
    "train_from_scratch",
    "write_report",
]
