"""`bench`: the latency of each exported file at batch 1, and how far it is from what the CPU can do.

The floor of a model on a machine is its multiply-adds per image (counted
from the layers) at the machine's peak multiply-add rate (a float32
matrix-multiply loop timed in the same run, on every core). No runtime
beats it; a file's latency divided by it says how much is left.
"""

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np

from transfer_tf.core.checks import check_int
from transfer_tf.core.cpu_settings import cpu_summary
from transfer_tf.exporting.artefacts import SAVED_MODEL_DIR
from transfer_tf.exporting.parity import format_latency, latency_fields
from transfer_tf.exporting.runtimes import (
    ONNX_FILE,
    OPENVINO_DIR,
    OPENVINO_FILE,
    THREAD_CONTROL,
    file_format,
    runner,
)
from transfer_tf.model.freezing import all_layers
from transfer_tf.model.saving import MODEL_FILE

PEAK_MATRIX = 1024  # the side of the square float32 matrices of the peak loop


@dataclasses.dataclass
class Bench:
    """What `bench` measured.

    Attributes:
        multiply_adds: int. Multiply-adds per image, counted from the layers.
        peak_gmacs: float. The machine's measured peak, in billions of
            float32 multiply-adds per second, on every core.
        floor_ms: float. `multiply_adds / peak`: no file can run faster.
        rows: list of dict. Per file: `file`, `format`, `latency_ms`,
            `latency_p90_ms`, `latency_1_thread_ms`,
            `latency_1_thread_p90_ms` (`None` where the runtime cannot be
            held to one core) and `floor_ratio` (all-core median / floor).
        machine: dict. `cpu_settings.cpu_summary()`.
    """

    multiply_adds: int
    peak_gmacs: float
    floor_ms: float
    rows: list
    machine: dict

    def table(self):
        """The rows as a printable table, the floor first."""
        lines = [f"floor: {self.multiply_adds / 1e6:.1f} M multiply-adds per image at the measured peak of "
                 f"{self.peak_gmacs:.1f} G multiply-adds/s = {self.floor_ms:.3f} ms",
                 f"{'file':<28}{'format':<12}{'latency, all cores':>22}{'latency, 1 core':>20}{'x floor':>9}"]
        for row in self.rows:
            lines.append(f"{row['file']:<28}{row['format']:<12}"
                         f"{format_latency(row['latency_ms'], row['latency_p90_ms']):>22}"
                         f"{format_latency(row['latency_1_thread_ms'], row['latency_1_thread_p90_ms']):>20}"
                         f"{row['floor_ratio']:>9.1f}")
        return "\n".join(lines)


def bench(export_dir, *, repeats=50, verbose=1):
    """Times every model file of an export folder at batch 1, and the machine's floor for the model.

    Args:
        export_dir: str or path. A folder `export` wrote (`RUN/export`).
        repeats: int. Timed runs per file and thread count, after a
            warm-up. Defaults to `50`.
        verbose: int. 0 silent, 1 a line per file. Defaults to `1`.

    Returns:
        `Bench`.

    Raises:
        FileNotFoundError: if the folder is not one `export` wrote (no
            `model_card.json` or `model.keras`).
    """
    from transfer_tf.methods.loading import load

    check_int("repeats", repeats, minimum=1)
    export_dir = Path(export_dir)
    if not (export_dir / "model_card.json").is_file() or not (export_dir / "model.keras").is_file():
        raise FileNotFoundError(f"No export folder at {export_dir} (model_card.json or model.keras is missing). "
                                "Run `transfer-tf export RUN` first, then bench RUN or RUN/export.")
    classifier = load(export_dir / "model.keras")
    macs = count_multiply_adds(classifier)
    peak = peak_multiply_adds_per_second()
    floor_ms = 1000 * macs / peak
    image = np.random.default_rng(0).uniform(0, 255, (1, *classifier.image_size, 3)).astype(np.float32)
    rows = []
    for path in _model_files(export_dir):
        kind = file_format(path)
        row = {"file": str(path.relative_to(export_dir)), "format": kind}
        one_core = (lambda: runner(path, threads=1)) if kind in THREAD_CONTROL else None
        row.update(latency_fields(runner(path), one_core, image, repeats))
        row["floor_ratio"] = row["latency_ms"] / floor_ms
        rows.append(row)
        if verbose:
            print(f"  {row['file']}: {row['latency_ms']:.2f} ms", flush=True)
    return Bench(multiply_adds=macs, peak_gmacs=peak / 1e9, floor_ms=floor_ms, rows=rows, machine=cpu_summary())


def count_multiply_adds(classifier):
    """Multiply-adds of one image through the classifier's convolutions and dense layers.

    Counts `Conv2D`, `DepthwiseConv2D` and `Dense` (the work of every
    registered backbone; pooling, activations and BatchNorm add little).
    """
    total = 0
    for layer in all_layers(classifier.base):
        total += _layer_multiply_adds(layer)
    for layer in all_layers(classifier.head):
        total += _layer_multiply_adds(layer)
    return int(total)


def peak_multiply_adds_per_second(seconds=1.0):
    """The best rate of a float32 matrix-multiply loop in TensorFlow on every core, in multiply-adds/s."""
    import tensorflow as tf

    a = tf.random.uniform((PEAK_MATRIX, PEAK_MATRIX))
    b = tf.random.uniform((PEAK_MATRIX, PEAK_MATRIX))
    multiply = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    multiply(a, b).numpy()  # trace and warm up
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        multiply(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return PEAK_MATRIX ** 3 / best


def _layer_multiply_adds(layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, height, width, channels = layer.output.shape
        kh, kw = layer.kernel_size
        return height * width * channels * kh * kw
    if isinstance(layer, keras.layers.Conv2D):
        _, height, width, filters = layer.output.shape
        kh, kw = layer.kernel_size
        inputs = layer.input.shape[-1]
        return height * width * filters * kh * kw * inputs // layer.groups
    if isinstance(layer, keras.layers.Dense):
        positions = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
        return positions * layer.input.shape[-1] * layer.units
    return 0


def _model_files(export_dir):
    """The export folder's model files, in the order export wrote them."""
    candidates = [export_dir / MODEL_FILE, export_dir / SAVED_MODEL_DIR, *sorted(export_dir.glob("*.tflite")),
                  export_dir / ONNX_FILE, export_dir / OPENVINO_DIR / OPENVINO_FILE]
    return [path for path in candidates if path.exists()]
