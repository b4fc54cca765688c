"""Mixed precision: build a classifier that computes in 16 bits, export it in 32.

Keras fixes a layer's dtype policy when the layer is made, so the policy is
an argument of `ImageClassifier.from_backbone`, which builds the whole model
under it. Under a mixed policy the weights stay float32 and the arithmetic
runs in bfloat16 or float16; the output layer stays float32. LiteRT has no
bfloat16 kernels, so `float32_copy` gives the same weights in a float32
model for export.
"""

import contextlib
import copy

import keras

from transfer_tf.core.choices import DTYPE_POLICIES
from transfer_tf.model.freezing import all_layers


def validate_dtype(dtype):
    """Accepts `None` or one of `DTYPE_POLICIES`."""
    if dtype is None or dtype in DTYPE_POLICIES:
        return
    raise ValueError(
        f"dtype must be one of {', '.join(DTYPE_POLICIES)} or None (Keras's global "
        f"policy). Received: dtype={dtype!r}"
    )


@contextlib.contextmanager
def dtype_policy_scope(dtype):
    """Layers made inside get the dtype policy `dtype` (`None`: leave it as it is)."""
    validate_dtype(dtype)
    previous = keras.config.dtype_policy()
    if dtype is not None:
        keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compute_dtypes(model):
    """The sorted compute dtypes of `model`'s layers, e.g. `["bfloat16", "float32"]`.

    Only layers that compute count: not nested models or their input layers,
    whose policy Keras does not save.
    """
    return sorted({
        layer.compute_dtype for layer in all_layers(model)
        if not isinstance(layer, (keras.Model, keras.layers.InputLayer))
    })


def is_mixed(model):
    """Whether any layer of `model` computes in 16 bits."""
    return any(dtype in ("bfloat16", "float16") for dtype in compute_dtypes(model))


def float32_copy(classifier):
    """The classifier itself if it computes in float32, else a float32 twin with its weights.

    The twin has the same layers, class names and weights (mixed precision
    keeps the weights float32, so they carry over exactly) and computes in
    float32; its outputs differ from the mixed model's by the 16-bit rounding
    the mixed model did.

    Args:
        classifier: `ImageClassifier`.

    Returns:
        An `ImageClassifier` computing in float32.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "vgg16", num_classes=2, image_size=32, weights=None,
        ...     dtype="mixed_bfloat16")
        >>> clf.base.get_layer("block1_conv1").compute_dtype
        'bfloat16'
        >>> float32_copy(clf).base.get_layer("block1_conv1").compute_dtype
        'float32'
    """
    if not is_mixed(classifier):
        return classifier
    config = _with_float32_policies(classifier.get_config())
    with dtype_policy_scope("float32"):
        twin = type(classifier).from_config(config)
    twin.set_weights(classifier.get_weights())
    twin.training_record = classifier.training_record
    return twin


def _with_float32_policies(config):
    """`config` with every serialised mixed dtype policy replaced by float32."""
    config = copy.deepcopy(config)

    def visit(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
                node["config"]["name"] = "float32"
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(config)
    return config
