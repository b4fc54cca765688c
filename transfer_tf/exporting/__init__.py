"""Export for deployment: SavedModel, TFLite with metadata, ONNX, OpenVINO IR, each checked.

`export` writes the bundle and measures every file in its own runtime on
held-out images; `TFLiteConfig` names a TFLite precision; `bench` times the
files against the machine's floor.

Imports: every layer below it: `core`, `backbones`, `data`, `model`,
`training`, `methods`, `auditing`,
`evaluation`.
"""

from transfer_tf.exporting.bench import Bench, bench
from transfer_tf.exporting.bundle import ExportResult, export
from transfer_tf.exporting.tflite import PRECISIONS, FlexOpsRequiredError, TFLiteConfig

__all__ = ["Bench", "ExportResult", "FlexOpsRequiredError", "PRECISIONS", "TFLiteConfig", "bench", "export"]
