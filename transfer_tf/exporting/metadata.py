"""TFLite model metadata that MediaPipe Tasks and LiteRT Support read.

The metadata is a `ModelMetadata` flatbuffer (schema `metadata_schema.fbs`,
file identifier `M001`) stored in a model buffer named `TFLITE_METADATA`;
its associated files (the labels) are a stored zip appended to the model.
The official writers do not install beside TensorFlow 2.21 (tflite-support
pins protobuf < 4; MediaPipe's writer misses a compiled module), so the few
tables needed are built here with `flatbuffers` directly.
"""

import io
import zipfile

import flatbuffers
import numpy as np

from transfer_tf.exporting.tflite import edited
from transfer_tf.model.saving import LABELS_FILE, labels_text

METADATA_BUFFER_NAME = "TFLITE_METADATA"
MIN_PARSER_VERSION = "1.0.0"

# Enum and union values from metadata_schema.fbs.
_IMAGE_PROPERTIES = 2  # ContentProperties
_FEATURE_PROPERTIES = 1  # ContentProperties
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
_RGB = 1  # ColorSpaceType
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


def add_metadata(model_bytes, *, name, description, version, author, class_names,
                 image_size, input_range=(0.0, 255.0)):
    """Returns the model with classifier metadata and `labels.txt` inside.

    Args:
        model_bytes: bytes. A `.tflite` flatbuffer with one image input and
            one score output.
        name, description, version, author: str. Shown by model viewers.
        class_names: list of str. One label per output score, in order.
        image_size: `(height, width)`.
        input_range: `(min, max)` of the raw pixel values the input takes.

    Returns:
        bytes: the model with the metadata buffer, followed by a zip holding
        `labels.txt`.
    """
    metadata = _model_metadata(
        name=name, description=description, version=version, author=author,
        image_size=image_size, input_range=input_range, num_classes=len(class_names),
    )
    with_metadata = _attach_buffer(model_bytes, metadata)
    labels = io.BytesIO()
    with zipfile.ZipFile(labels, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, labels_text(class_names))
    return with_metadata + labels.getvalue()


def read_labels(model_bytes):
    """The labels packed in a model by `add_metadata` (for checks and tests)."""
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
        return archive.read(LABELS_FILE).decode().splitlines()


def _attach_buffer(model_bytes, metadata):
    def attach(model, schema):
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(metadata, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_BUFFER_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_BUFFER_NAME.encode()]
        model.metadata.append(entry)

    return edited(model_bytes, attach, grows_by=len(metadata))


def _model_metadata(*, name, description, version, author, image_size, input_range, num_classes):
    b = flatbuffers.Builder(1024)
    strings = {key: b.CreateString(value) for key, value in (
        ("name", name), ("description", description), ("version", version),
        ("author", author), ("parser", MIN_PARSER_VERSION),
        ("image", "image"), ("probabilities", "probabilities"),
        ("image_description", "RGB image, raw pixel values (normalisation is inside the model)."),
        ("scores_description", f"Scores of the {num_classes} classes, in labels.txt order."),
        ("labels", LABELS_FILE), ("labels_description", "One class name per line."),
    )}
    low, high = input_range

    # Input: an RGB image of fixed size; identity normalisation (mean 0,
    # std 1) since the model takes raw pixels and normalises them itself.
    size = _table(b, [(0, "uint32", image_size[1]), (1, "uint32", image_size[0])])
    image_properties = _table(b, [(0, "int8", _RGB), (1, "offset", size)])
    image_content = _table(b, [(0, "uint8", _IMAGE_PROPERTIES), (1, "offset", image_properties)])
    normalization = _table(b, [
        (0, "offset", _float_vector(b, [0.0])), (1, "offset", _float_vector(b, [1.0])),
    ])
    process_unit = _table(b, [(0, "uint8", _NORMALIZATION_OPTIONS), (1, "offset", normalization)])
    input_stats = _table(b, [
        (0, "offset", _float_vector(b, [high])), (1, "offset", _float_vector(b, [low])),
    ])
    input_tensor = _table(b, [
        (0, "offset", strings["image"]), (1, "offset", strings["image_description"]),
        (3, "offset", image_content), (4, "offset", _offset_vector(b, [process_unit])),
        (5, "offset", input_stats),
    ])

    # Output: one score per class, labelled by the associated labels file.
    features = _table(b, [])
    score_content = _table(b, [(0, "uint8", _FEATURE_PROPERTIES), (1, "offset", features)])
    score_stats = _table(b, [
        (0, "offset", _float_vector(b, [1.0])), (1, "offset", _float_vector(b, [0.0])),
    ])
    labels_file = _table(b, [
        (0, "offset", strings["labels"]), (1, "offset", strings["labels_description"]),
        (2, "int8", _TENSOR_AXIS_LABELS),
    ])
    output_tensor = _table(b, [
        (0, "offset", strings["probabilities"]), (1, "offset", strings["scores_description"]),
        (3, "offset", score_content), (5, "offset", score_stats),
        (6, "offset", _offset_vector(b, [labels_file])),
    ])

    subgraph = _table(b, [
        (2, "offset", _offset_vector(b, [input_tensor])),
        (3, "offset", _offset_vector(b, [output_tensor])),
    ])
    root = _table(b, [
        (0, "offset", strings["name"]), (1, "offset", strings["description"]),
        (2, "offset", strings["version"]), (3, "offset", _offset_vector(b, [subgraph])),
        (4, "offset", strings["author"]), (7, "offset", strings["parser"]),
    ])
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


_PREPEND = {
    "offset": "PrependUOffsetTRelativeSlot",
    "uint32": "PrependUint32Slot",
    "uint8": "PrependUint8Slot",
    "int8": "PrependInt8Slot",
}


def _table(builder, fields):
    """A table from `(slot, kind, value)` fields; children must already exist."""
    builder.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
    for slot, kind, value in fields:
        getattr(builder, _PREPEND[kind])(slot, value, 0)
    return builder.EndObject()


def _float_vector(builder, values):
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(value)
    return builder.EndVector()


def _offset_vector(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()
