"""EfficientNet-Lite0/1/2: EfficientNet without squeeze-excite, with ReLU6.

The Lite variants are the mobile EfficientNets of the TensorFlow Lite model
garden (`efficientnet_lite_builder.py`), and Lite0 is MediaPipe Model
Maker's default image-classifier backbone. They differ from EfficientNet-B0
in three ways: ReLU6 instead of swish, no squeeze-and-excitation, and, when
scaled, the stem (32 filters), the head (1280 filters) and the repeats of
the first and last stage stay fixed.

The model is built here from public Keras layers (no private module), and
its layers carry the names of `keras.applications.EfficientNetB0`
(`stem_conv`, `block2a_expand_conv`, `top_conv`, ...), so the block map of
EfficientNet fits it and `unfreeze_blocks` means the same thing. Unlike
keras.applications' EfficientNets, the model does not normalise its input:
the classifier's `ImagePreprocessing("lite")` maps raw pixels to
`(x - 127) / 128` as the TF Lite builders did.
"""

import dataclasses
import math

import keras
from keras import layers

DEFAULT_DROP_CONNECT_RATE = 0.2
DEFAULT_DROPOUT_RATE = 0.2
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class _Stage:
    kernel_size: int
    repeats: int
    filters_in: int
    filters_out: int
    expand_ratio: int
    strides: int


# EfficientNet-B0's stages (keras.applications DEFAULT_BLOCKS_ARGS).
_B0_STAGES = (
    _Stage(3, 1, 32, 16, 1, 1),
    _Stage(3, 2, 16, 24, 6, 2),
    _Stage(5, 2, 24, 40, 6, 2),
    _Stage(3, 3, 40, 80, 6, 2),
    _Stage(5, 3, 80, 112, 6, 1),
    _Stage(5, 4, 112, 192, 6, 2),
    _Stage(3, 1, 192, 320, 6, 1),
)

# name: (width coefficient, depth coefficient, default size)
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}


def _round_filters(filters, width, divisor=8):
    filters *= width
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:  # never round down by more than 10 %
        rounded += divisor
    return int(rounded)


def lite_stages(width, depth):
    """The stages of a Lite variant: filters scaled, first and last repeats fixed."""
    last = len(_B0_STAGES) - 1
    return tuple(
        dataclasses.replace(
            stage,
            filters_in=_round_filters(stage.filters_in, width),
            filters_out=_round_filters(stage.filters_out, width),
            repeats=stage.repeats if i in (0, last) else int(math.ceil(depth * stage.repeats)),
        )
        for i, stage in enumerate(_B0_STAGES)
    )


def block_prefixes(width, depth):
    """Names of the MBConv blocks in order (`block1a_`, `block2a_`, ...)."""
    return [
        f"block{i + 1}{chr(97 + j)}_"
        for i, stage in enumerate(lite_stages(width, depth))
        for j in range(stage.repeats)
    ]


def _correct_pad(size, kernel_size):
    """TF 'same' padding of a stride-2 convolution on `size`, as keras.applications pads."""
    adjust = tuple(1 - s % 2 if s is not None else 1 for s in size)
    correct = (kernel_size // 2, kernel_size // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def _mbconv(x, stage, filters_in, strides, drop_rate, name):
    """Inverted residual block without squeeze-excite (keras.applications layout)."""
    inputs = x
    filters = filters_in * stage.expand_ratio
    if stage.expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer="he_normal",
                          name=f"{name}expand_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}expand_bn")(x)
        x = layers.Activation("relu6", name=f"{name}expand_activation")(x)
    if strides == 2:
        x = layers.ZeroPadding2D(_correct_pad(x.shape[1:3], stage.kernel_size),
                                 name=f"{name}dwconv_pad")(x)
    x = layers.DepthwiseConv2D(stage.kernel_size, strides=strides,
                               padding="valid" if strides == 2 else "same", use_bias=False,
                               depthwise_initializer="he_normal", name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}bn")(x)
    x = layers.Activation("relu6", name=f"{name}activation")(x)
    x = layers.Conv2D(stage.filters_out, 1, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}project_bn")(x)
    if strides == 1 and filters_in == stage.filters_out:
        if drop_rate > 0:
            # Stochastic depth: drops the whole residual branch of a sample.
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def efficientnet_lite(
    variant,
    *,
    include_top=True,
    weights=None,
    input_shape=None,
    classes=1000,
    classifier_activation="softmax",
    drop_connect_rate=DEFAULT_DROP_CONNECT_RATE,
    dropout_rate=DEFAULT_DROPOUT_RATE,
):
    """Builds an EfficientNet-Lite model with random weights.

    Args:
        variant: str. `"efficientnet_lite0"`, `"efficientnet_lite1"` or
            `"efficientnet_lite2"`.
        include_top: bool. Whether to add the 1000-class ImageNet classifier
            (global average pooling, dropout, dense). Defaults to `True`.
        weights: `None`: random initialisation. ImageNet weights are loaded
            by `weights.build_base` (see `packaged_weights`). Defaults to
            `None`.
        input_shape: tuple or `None`. `(height, width, 3)`. Defaults to the
            variant's ImageNet size.
        classes: int. Classes of the top. Must be 1000 with ImageNet weights.
            Defaults to `1000`.
        classifier_activation: str or `None`. Activation of the top.
            Defaults to `"softmax"`.
        drop_connect_rate: float. Stochastic-depth rate of the last block
            (earlier blocks get proportionally less). Defaults to `0.2`.
        dropout_rate: float. Dropout before the top. Defaults to `0.2`.

    Returns:
        A functional `keras.Model` from `(x - 127) / 128` normalised RGB
        images to the 1280-channel feature map, or to class scores.

    Raises:
        ValueError: for an unknown variant, or `weights` other than `None`.
    """
    if variant not in LITE_VARIANTS:
        raise ValueError(f"variant must be one of {list(LITE_VARIANTS)}. Received: variant={variant!r}")
    if weights is not None:
        raise ValueError(
            "efficientnet_lite builds random weights; load ImageNet weights with "
            "ImageClassifier.from_backbone(..., weights='imagenet') or "
            f"packaged_weights.imagenet_weights_file(). Received: weights={weights!r}"
        )
    width, depth, default_size = LITE_VARIANTS[variant]
    input_shape = (default_size, default_size, 3) if input_shape is None else tuple(input_shape)

    images = keras.Input(input_shape, name="input_layer")
    x = layers.ZeroPadding2D(_correct_pad(input_shape[:2], 3), name="stem_conv_pad")(images)
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer="he_normal", name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = layers.Activation("relu6", name="stem_activation")(x)

    stages = lite_stages(width, depth)
    total = sum(stage.repeats for stage in stages)
    index = 0
    for i, stage in enumerate(stages):
        for j in range(stage.repeats):
            filters_in = stage.filters_in if j == 0 else stage.filters_out
            x = _mbconv(x, stage, filters_in, stage.strides if j == 0 else 1,
                        drop_connect_rate * index / total, name=f"block{i + 1}{chr(97 + j)}_")
            index += 1

    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="top_bn")(x)
    x = layers.Activation("relu6", name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(images, x, name=variant)


def EfficientNetLite0(**kwargs):  # noqa: N802 (named like keras.applications constructors)
    """EfficientNet-Lite0 (224 px); arguments as `efficientnet_lite`."""
    return efficientnet_lite("efficientnet_lite0", **kwargs)


def EfficientNetLite1(**kwargs):  # noqa: N802
    """EfficientNet-Lite1 (240 px); arguments as `efficientnet_lite`."""
    return efficientnet_lite("efficientnet_lite1", **kwargs)


def EfficientNetLite2(**kwargs):  # noqa: N802
    """EfficientNet-Lite2 (260 px); arguments as `efficientnet_lite`."""
    return efficientnet_lite("efficientnet_lite2", **kwargs)
