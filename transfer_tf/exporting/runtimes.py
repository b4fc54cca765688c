"""Each exported file run in its own runtime: a function from raw images to per-class scores.

`runner(path, threads)` opens a file the way the team that ships it would:
a `.tflite` in LiteRT, `model.onnx` in onnxruntime, OpenVINO IR in
OpenVINO's `Core`, a SavedModel in TensorFlow, `model.keras` in Keras.
`threads` caps the cores the runtime uses where it can be told (LiteRT,
onnxruntime, OpenVINO); TensorFlow fixes its thread pools when it starts,
so the Keras and SavedModel runners use every core whatever is asked
(`THREAD_CONTROL` says which).
"""

import os
from pathlib import Path

import numpy as np

from transfer_tf.exporting.parity import tflite_runner
from transfer_tf.model.inference import batch_function

ONNX_FILE = "model.onnx"
OPENVINO_DIR = "openvino"
OPENVINO_FILE = "model.xml"
# The formats whose runtime takes a thread count.
THREAD_CONTROL = ("tflite", "onnx", "openvino")
# OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has bfloat16 instructions
# (AVX512_BF16, AMX), which moves probabilities by up to 0.2 on this stack: the file is checked
# and timed at its own float32 precision, as an app that sets this hint runs it.
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def file_format(path):
    """The format of an exported file or folder: `tflite`, `onnx`, `openvino`, `saved_model` or `keras`."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "saved_model"
        if (path / OPENVINO_FILE).is_file():
            return "openvino"
    formats = {".tflite": "tflite", ".onnx": "onnx", ".xml": "openvino", ".keras": "keras"}
    if path.suffix in formats:
        return formats[path.suffix]
    raise ValueError(f"Not an exported model file transfer_tf can run: {path}. Expected a .tflite, "
                     ".onnx, OpenVINO .xml, .keras file or a SavedModel folder.")


def runner(path, threads=None):
    """A function from a float32 batch of raw RGB images to per-class float scores.

    Args:
        path: str or path. An exported file (or SavedModel / OpenVINO folder).
        threads: int or `None`. Cores the runtime may use, where it takes a
            number (see `THREAD_CONTROL`); `None` for every core. Defaults to
            `None`.

    Returns:
        callable `(batch) -> array (n, classes)`.

    Raises:
        ValueError: for a file of no known format.
        ImportError: if the format's runtime is not installed.
    """
    path = Path(path)
    threads = threads or os.cpu_count()
    return _RUNNERS[file_format(path)](path, threads)


def _tflite(path, threads):
    return tflite_runner(path.read_bytes(), threads)


def _onnx(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: np.asarray(batch, np.float32)})[0]


def _openvino(path, threads):
    import openvino

    xml = path / OPENVINO_FILE if path.is_dir() else path
    compiled = openvino.Core().compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                **OPENVINO_CONFIG})
    request = compiled.create_infer_request()
    output = compiled.outputs[0]
    return lambda batch: np.array(request.infer([np.asarray(batch, np.float32)])[output])


def _saved_model(path, threads):
    import tensorflow as tf

    from transfer_tf.exporting.saved_model import SERVING_SIGNATURE, signature_runner

    return signature_runner(tf.saved_model.load(str(path)).signatures[SERVING_SIGNATURE])


def _keras(path, threads):
    from transfer_tf.exporting.saved_model import serving_model
    from transfer_tf.methods.loading import load

    run = batch_function(serving_model(load(path)))
    return lambda batch: run(np.asarray(batch, np.float32))


_RUNNERS = {"tflite": _tflite, "onnx": _onnx, "openvino": _openvino, "saved_model": _saved_model,
            "keras": _keras}
