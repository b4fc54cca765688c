"""Backbone preprocessing as a serialisable layer, so models take raw pixels."""

import keras
import numpy as np
from keras import ops

PREPROCESSING_MODES = ("caffe", "tf", "torch", "lite", "none")

_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# The TF Lite EfficientNet-Lite builders' MEAN_RGB and STDDEV_RGB.
_LITE_MEAN = 127.0
_LITE_STD = 128.0


def lite_preprocess_input(images):
    """`(x - 127) / 128`: what EfficientNet-Lite's ImageNet weights expect, on NumPy arrays."""
    return (np.asarray(images, np.float32) - _LITE_MEAN) / _LITE_STD


@keras.saving.register_keras_serializable(package="transfer_tf")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to what a backbone expects.

    The same arithmetic as `keras.applications.<family>.preprocess_input`,
    as a layer inside the model graph: a saved or exported model takes raw
    images and carries no Python code (no `Lambda`).

    Args:
        mode: str. `"caffe"` (RGB to BGR, ImageNet mean subtracted; VGG,
            ResNet), `"tf"` (scaled to [-1, 1]; MobileNetV2, ResNetV2,
            Inception, Xception), `"torch"` (scaled to [0, 1], then ImageNet
            mean and standard deviation; DenseNet), `"lite"` (`(x - 127) /
            128`; EfficientNet-Lite) or `"none"` (pixels pass
            unchanged; backbones that preprocess inside themselves).
            Defaults to `"none"`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Raises:
        ValueError: if `mode` is not one of the above.

    Examples:

        >>> layer = ImagePreprocessing("tf")
        >>> float(layer(np.full((1, 2, 2, 3), 255.0))[0, 0, 0, 0])
        1.0
    """

    def __init__(self, mode="none", **kwargs):
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"mode must be one of {PREPROCESSING_MODES}. Received: mode={mode!r}"
            )
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, images):
        x = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
            return x - ops.convert_to_tensor(_IMAGENET_MEAN_BGR, dtype=x.dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_IMAGENET_MEAN_RGB, dtype=x.dtype)
            std = ops.convert_to_tensor(_IMAGENET_STD_RGB, dtype=x.dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "lite":
            return (x - _LITE_MEAN) / _LITE_STD
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
