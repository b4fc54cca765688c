"""TFLite conversion: one small config object per precision, built-in ops only."""

import dataclasses
import re
import warnings

import flatbuffers
import numpy as np

from transfer_tf.core.checks import check_int
from transfer_tf.core.choices import PRECISIONS
from transfer_tf.exporting.saved_model import SERVING_SIGNATURE

DEFAULT_CALIBRATION_IMAGES = 300

_OP_NEEDED = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_CUSTOM_OPS = re.compile(r"Custom ops: ([\w, ]+)")


class FlexOpsRequiredError(ValueError):
    """The model needs TensorFlow (Flex) ops that LiteRT's built-ins lack."""


@dataclasses.dataclass(frozen=True)
class TFLiteConfig:
    """How one `.tflite` file is converted. Build one with a named constructor.

    `TFLiteConfig.float32()`, `.float16()`, `.dynamic_range()` and
    `.int8(...)` read at the call site; options that only make sense for
    full-integer quantization are refused for the others, never ignored.

    Args:
        precision: str. One of `"float32"`, `"float16"` (weights stored as
            float16), `"dynamic_range"` (weights int8, activations float) or
            `"int8"` (weights and activations int8, calibrated on images).
        representative_data: array of raw images `(N, H, W, 3)`, a
            `tf.data.Dataset` of images or `(images, labels)` batches, or
            `None`. int8 only: the calibration images. Defaults to `None`,
            which takes them from the training images given to `export`.
        num_calibration_images: int. int8 only: how many images calibrate
            the activation ranges. Defaults to `300`.
        integer_io: bool. int8 only: whether the model takes uint8 pixels and
            returns uint8 scores (for NPUs and microcontrollers) instead of
            float32. Defaults to `False`.

    Raises:
        ValueError: for an unknown precision, or an int8 option given to
            another precision.

    Examples:

        >>> TFLiteConfig.int8(integer_io=True).filename
        'model_int8_uint8_io.tflite'
    """

    precision: str
    representative_data: object = dataclasses.field(default=None, repr=False, compare=False)
    num_calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    integer_io: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}. "
                f"Received: precision={self.precision!r}"
            )
        n = self.num_calibration_images
        check_int("num_calibration_images", n, minimum=1)
        if self.precision != "int8" and (
            self.representative_data is not None or self.integer_io
            or n != DEFAULT_CALIBRATION_IMAGES
        ):
            raise ValueError(
                "representative_data, num_calibration_images and integer_io only apply to "
                f"int8; a {self.precision} model is not calibrated. Use TFLiteConfig.int8(...)."
            )

    @classmethod
    def float32(cls):
        """Float32 weights and activations: the Keras model's numbers."""
        return cls("float32")

    @classmethod
    def float16(cls):
        """Weights stored as float16: half the file, float32 compute on CPU."""
        return cls("float16")

    @classmethod
    def dynamic_range(cls):
        """Weights stored as int8, activations float: a quarter of the file."""
        return cls("dynamic_range")

    @classmethod
    def int8(cls, representative_data=None, *, num_calibration_images=DEFAULT_CALIBRATION_IMAGES,
             integer_io=False):
        """Full-integer int8, calibrated on representative images."""
        return cls("int8", representative_data, num_calibration_images, integer_io)

    @classmethod
    def from_name(cls, name):
        """The config of a precision name (`"dynamic-range"` is accepted too)."""
        if isinstance(name, cls):
            return name
        return cls(str(name).replace("-", "_"))

    @property
    def name(self):
        return f"{self.precision}_uint8_io" if self.integer_io else self.precision

    @property
    def filename(self):
        return f"model_{self.name}.tflite"


def convert(signature, config, calibration_images=None, *, allow_flex_ops=False):
    """Converts a loaded SavedModel's `serving_default` signature to TFLite bytes.

    The file keeps that signature: key `serving_default`, the input and
    output under the signature's names (`images`, `probabilities`).

    Args:
        signature: the concrete function `tf.saved_model.load(path)
            .signatures["serving_default"]`, taking float32 raw images as its
            one input and returning one output. Keep the loaded SavedModel
            alive while converting: it holds the variables.
        config: `TFLiteConfig`.
        calibration_images: float32 array `(N, H, W, 3)` or `None`. Required
            for int8.
        allow_flex_ops: bool. Whether TensorFlow ops outside LiteRT's
            built-ins may be bundled as Flex ops. Defaults to `False`.

    Returns:
        bytes: the flatbuffer.

    Raises:
        FlexOpsRequiredError: if the model needs ops LiteRT lacks and
            `allow_flex_ops` is False.
        ValueError: for int8 without calibration images.
    """
    import tensorflow as tf

    names = _only_names(signature)
    # From the function, not the folder: `from_saved_model` loads the SavedModel three times for
    # each file (4-6 s a file for a MobileNetV3Small at 32 px) to give the same operators and
    # weights. The function as `trackable_obj` keeps the converter on that route (another object
    # would make it save the function to a SavedModel again).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([signature], trackable_obj=signature)
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    if config.precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif config.precision == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif config.precision == "int8":
        if calibration_images is None or len(calibration_images) == 0:
            raise ValueError("int8 needs calibration images. Received none.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration_images)
        builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        if config.integer_io:
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
    converter.target_spec.supported_ops = [builtins] + (
        [tf.lite.OpsSet.SELECT_TF_OPS] if allow_flex_ops else []
    )
    try:
        with warnings.catch_warnings():
            # Said on this route for every int8 file: the representative images set those statistics
            # (the file's scores equal the SavedModel route's, which does not say it).
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
            converted = converter.convert()
    except Exception as error:  # the converter raises ConverterError with MLIR text
        needed = needed_ops(str(error))
        if needed and not allow_flex_ops:
            raise FlexOpsRequiredError(
                f"The model needs TensorFlow ops that LiteRT's built-in op set lacks: "
                f"{', '.join(needed)}. The LiteRT runtime on Android and iOS cannot run "
                "them unless the app links the Flex delegate. Replace the layers that use "
                "them, or export anyway with allow_flex_ops=True (--allow-flex-ops)."
            ) from None
        raise ValueError(
            f"TFLite conversion to {config.name} failed: "
            f"{needed and 'ops not available even as Flex ops: ' + ', '.join(needed) or _summary(error)}"
        ) from None
    return with_signature(converted, SERVING_SIGNATURE, *names)


def with_signature(model_bytes, key, input_name, output_name):
    """The model with one signature, `key`, over its one input and one output.

    The converter writes signatures only on its SavedModel route; LiteRT's
    `get_signature_runner(key)` and Android's `runSignature` need one.
    """
    def add(model, schema):
        graph = model.subgraphs[0]
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = key, 0
        signature.inputs, signature.outputs = [], []
        for name, indices, entries in ((input_name, graph.inputs, signature.inputs),
                                       (output_name, graph.outputs, signature.outputs)):
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = name, int(indices[0])
            entries.append(entry)
        model.signatureDefs = [signature]

    return edited(model_bytes, add)


def edited(model_bytes, edit, grows_by=0):
    """A `.tflite` flatbuffer after `edit(model, schema)` changed its object form (`schema.ModelT`).

    `grows_by` is about how many bytes the edit adds, so the builder need
    not grow as it writes.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    edit(model, schema)
    builder = flatbuffers.Builder(len(model_bytes) + grows_by + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _only_names(signature):
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1 or signature.structured_input_signature[0]:
        raise ValueError(f"A TFLite classifier takes one input and returns one output. Received: a signature "
                         f"with inputs {list(inputs)} and outputs {list(outputs)}")
    return next(iter(inputs)), next(iter(outputs))


def needed_ops(message):
    """The TensorFlow op names a converter error says LiteRT cannot run."""
    names = set(_OP_NEEDED.findall(message))
    for group in _CUSTOM_OPS.findall(message):
        names.update(n.strip() for n in group.split(",") if n.strip())
    return sorted(names)


def _representative(images):
    def batches():
        for image in images:
            yield [np.asarray(image, np.float32)[None]]

    return batches


def _summary(error):
    lines = [line for line in str(error).splitlines() if "error" in line.lower()]
    return (lines[0] if lines else str(error).strip().splitlines()[0])[:500]


def operators(model_bytes):
    """The sorted names of the operators a `.tflite` flatbuffer uses.

    Built-in ops by name (`CONV_2D`); custom ops by their code, so Flex ops
    show as `Flex...`.
    """
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(model_bytes, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            found.add(code.CustomCode().decode())
        else:
            found.add(names.get(builtin, str(builtin)))
    return sorted(found)


def flex_ops(model_bytes):
    """The Flex (TensorFlow) ops among a model's operators."""
    return [op for op in operators(model_bytes) if op.startswith("Flex")]
