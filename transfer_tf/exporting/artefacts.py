"""The files `export` writes, one small object each: write it, then run it.

An artefact writes its file into the export folder and, once written, gives
a `runner(threads)`: a function from a batch of raw images to per-class
scores (in the file's own runtime, on at most `threads` cores where that
runtime takes a number), or `None` when the file cannot run here (TFLite with
Flex ops). `export` runs every artefact through the same checks.
"""

import logging
import warnings

import tensorflow as tf

from transfer_tf.exporting import runtimes
from transfer_tf.exporting.metadata import add_metadata
from transfer_tf.exporting.parity import tflite_runner
from transfer_tf.exporting.saved_model import SERVING_INPUT, SERVING_SIGNATURE, signature_runner, write_saved_model
from transfer_tf.exporting.tflite import convert, flex_ops, operators
from transfer_tf.model.inference import any_batch_spec
from transfer_tf.model.saving import LABELS_FILE, MODEL_FILE, labels_text, save_model_file

SAVED_MODEL_DIR = "saved_model"
# Converted from the serving graph by their own converters; a model they cannot hold is skipped unless
# asked for by name.
CONVERTED_FORMATS = ("onnx", "openvino")


class KerasArtefact:
    """`model.keras` (and `labels.txt`): the classifier itself; the reference of every check."""

    name = "keras"
    format = "keras"
    file = MODEL_FILE

    def __init__(self, classifier, serving_run):
        self.classifier = classifier
        self.serving_run = serving_run

    def write(self, folder):
        save_model_file(self.classifier, folder / MODEL_FILE)
        (folder / LABELS_FILE).write_text(labels_text(self.classifier.class_names))
        return folder / MODEL_FILE

    def runner(self, threads=None):
        return self.serving_run

    def record(self):
        return None


class SavedModelArtefact:
    """`saved_model/`: raw-image signatures, loadable with plain TensorFlow."""

    name = "saved_model"
    format = "saved_model"
    file = SAVED_MODEL_DIR

    def __init__(self, serving, class_names):
        self.serving = serving
        self.class_names = class_names
        self.loaded = None

    def write(self, folder):
        write_saved_model(self.serving, self.class_names, folder / SAVED_MODEL_DIR)
        self.loaded = tf.saved_model.load(str(folder / SAVED_MODEL_DIR))  # kept: it holds the variables
        return folder / SAVED_MODEL_DIR

    @property
    def signature(self):
        """`serving_default` of the file as loaded: what the check runs and TFLite converts."""
        return self.loaded.signatures[SERVING_SIGNATURE]

    def runner(self, threads=None):
        return signature_runner(self.signature)

    def record(self):
        return None


class TFLiteArtefact:
    """A `.tflite` file at one precision, with metadata, converted from the SavedModel once it is written."""

    format = "tflite"

    def __init__(self, config, saved_model, calibration_images, metadata, *, allow_flex_ops):
        self.config = config
        self.saved_model = saved_model
        self.calibration_images = calibration_images
        self.metadata = metadata
        self.allow_flex_ops = allow_flex_ops
        self.model_bytes = None

    @property
    def name(self):
        return self.config.name

    @property
    def file(self):
        return self.config.filename

    @property
    def flex_ops(self):
        return flex_ops(self.model_bytes)

    def write(self, folder):
        converted = convert(self.saved_model.signature, self.config, self.calibration_images,
                            allow_flex_ops=self.allow_flex_ops)
        self.model_bytes = add_metadata(converted, **self.metadata)
        (folder / self.file).write_bytes(self.model_bytes)
        return folder / self.file

    def runner(self, threads=None):
        # Neither ai-edge-litert nor tf.lite links the Flex delegate: such a
        # file cannot run here, so it is listed, not checked.
        return None if self.flex_ops else tflite_runner(self.model_bytes, threads)

    def record(self):
        config = self.config
        return {
            "artefact": config.name, "file": config.filename, "precision": config.precision,
            "input_dtype": "uint8" if config.integer_io else "float32",
            "output_dtype": "uint8" if config.integer_io else "float32",
            "calibration_images": (None if self.calibration_images is None
                                   else len(self.calibration_images)),
            "operators": operators(self.model_bytes), "flex_ops": self.flex_ops,
        }


class _ConvertedArtefact:
    """A file converted from the serving model's graph, run in its own runtime.

    The graph is the one the Keras row's check traced (`serving_run`), so the
    converters start from it instead of tracing the whole network again, as
    `keras.Model.export(format=...)` would (seconds per format on a CPU).
    """

    def __init__(self, serving_run, image_shape):
        self.serving_run = serving_run
        self.spec = any_batch_spec(image_shape, tf.float32)  # the graph `serving_run` traced for images
        self.path = None

    def write(self, folder):
        self.path = folder / self.file
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # tf2onnx logs a traceback for each graph optimisation it skips, and carries on.
        quiet = logging.getLogger("tf2onnx")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            with warnings.catch_warnings():  # Keras's tf2onnx shim probes np.object
                warnings.simplefilter("ignore", FutureWarning)
                self.convert(self.serving_run.function, self.path)
        finally:
            quiet.setLevel(level)
        return folder / self.file.split("/")[0]

    def runner(self, threads=None):
        return runtimes.runner(self.path, threads)

    def record(self):
        return None


class OnnxArtefact(_ConvertedArtefact):
    """`model.onnx` (through tf2onnx), for onnxruntime on servers and PCs."""

    name = format = "onnx"
    file = runtimes.ONNX_FILE

    def convert(self, function, path):
        import tf2onnx
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        patch_tf2onnx()  # tf2onnx still uses NumPy 1 names; Keras's own ONNX export patches them the same way
        tf2onnx.convert.from_function(function, [self.spec], output_path=str(path))


class OpenVinoArtefact(_ConvertedArtefact):
    """`openvino/model.xml` + `model.bin`, OpenVINO's IR, for Intel CPUs, GPUs and NPUs."""

    name = format = "openvino"
    file = f"{runtimes.OPENVINO_DIR}/{runtimes.OPENVINO_FILE}"

    def convert(self, function, path):
        import openvino

        model = openvino.convert_model(function.get_concrete_function(self.spec))
        for model_input in model.inputs:  # named as Keras's OpenVINO export names it
            model_input.get_node().set_friendly_name(SERVING_INPUT)
            model_input.tensor.set_names({SERVING_INPUT})
        openvino.serialize(model, str(path))  # weights as they are: no float16 compression
