"""Which file formats an export writes, and what each needs installed.

SavedModel and TFLite come with TensorFlow. ONNX and OpenVINO IR are
converted from the serving graph by tf2onnx and OpenVINO's converter and
need packages of their own, the extras `transfer_tf[onnx]` and
`transfer_tf[openvino]`.
"""

import importlib.util

from transfer_tf.core.choices import EXPORT_FORMATS

# The packages each format needs, to be written and to be checked in its own runtime.
PACKAGES = {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "openvino": ("openvino",)}
_ALIASES = {"savedmodel": "saved_model", "saved-model": "saved_model"}


def missing_packages(name):
    """The packages format `name` needs that are not installed (empty when it can be made)."""
    return [package for package in PACKAGES.get(name, ()) if importlib.util.find_spec(package) is None]


def install_hint(name):
    return f"pip install 'transfer_tf[{name}]'"


def choose_formats(formats=None):
    """The formats to write, and a line for each format left out because its packages are missing.

    Args:
        formats: sequence of names (`"saved_model"` or `"savedmodel"`,
            `"tflite"`, `"onnx"`, `"openvino"`), or `None` for every format
            whose packages are installed. Defaults to `None`.

    Returns:
        `(chosen, skipped)`: a tuple of format names in `EXPORT_FORMATS`
        order, and a list of messages naming each skipped format and the
        pip command that adds it.

    Raises:
        ValueError: for an unknown name, or a format asked for by name whose
            packages are missing (never skipped silently).
    """
    if formats is None:
        chosen = [name for name in EXPORT_FORMATS if not missing_packages(name)]
        skipped = [f"{name}: skipped, {', '.join(missing_packages(name))} not installed ({install_hint(name)})"
                   for name in EXPORT_FORMATS if missing_packages(name)]
        return tuple(chosen), skipped
    if isinstance(formats, str):
        formats = [formats]
    names = [_ALIASES.get(str(name).lower(), str(name).lower()) for name in formats]
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown or not names:
        raise ValueError(f"formats must be some of {', '.join(EXPORT_FORMATS)}. Received: formats={list(formats)}")
    for name in names:
        if missing_packages(name):
            raise ValueError(f"The {name} format needs {', '.join(missing_packages(name))}, which is not "
                             f"installed. Install it with: {install_hint(name)}. Received: formats={list(formats)}")
    return tuple(name for name in EXPORT_FORMATS if name in names), []
