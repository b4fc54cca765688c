"""Export for deployment: SavedModel, TFLite with metadata, parity checks.

`export` writes the bundle; `TFLiteConfig` names a TFLite precision.

Imports: every layer below it: `core`, `backbones`, `data`, `model`,
`training`, `methods`, `auditing`,
`evaluation`.
"""

from transfer_tf.exporting.bundle import ExportResult, export
from transfer_tf.exporting.tflite import PRECISIONS, FlexOpsRequiredError, TFLiteConfig

__all__ = ["ExportResult", "FlexOpsRequiredError", "PRECISIONS", "TFLiteConfig", "export"]
