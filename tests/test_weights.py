"""Weight sources: files, saved transfer_tf models, and ImageNet offline."""

import urllib.error

import h5py
import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.backbones.weights import build_base

from conftest import random_images, separable_data


def _outputs(model, images):
    return np.asarray(model(images, training=False))


@pytest.mark.parametrize("file_name", ["base.weights.h5", "base_legacy.h5"])
def test_weights_file_round_trip(tmp_path, file_name):
    source = build_base("vgg16", 32, weights=None)
    path = tmp_path / file_name
    if file_name.endswith(".weights.h5"):
        source.save_weights(path)
    else:  # the legacy layout of the ImageNet files Keras downloads
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, source)
    rebuilt = build_base("vgg16", 32, weights=str(path))
    images = random_images(2, 32)
    np.testing.assert_array_equal(_outputs(rebuilt, images), _outputs(source, images))
    fresh = build_base("vgg16", 32, weights=None)
    assert not np.array_equal(_outputs(fresh, images), _outputs(source, images))


def test_weights_file_of_another_backbone_is_refused(tmp_path):
    path = tmp_path / "vgg19.weights.h5"
    build_base("vgg19", 32, weights=None).save_weights(path)
    with pytest.raises(ValueError, match=r"Could not load .*vgg19.weights.h5 into vgg16.*include_top=False"):
        build_base("vgg16", 32, weights=str(path))


def test_missing_and_unknown_weights_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="No weights file at"):
        build_base("vgg16", 32, weights=str(tmp_path / "absent.weights.h5"))
    with pytest.raises(ValueError, match=r"must end in .h5 or .weights.h5.*Received: weights='foo'"):
        build_base("vgg16", 32, weights="foo")
    with pytest.raises(ValueError, match="weights must be 'imagenet', None"):
        build_base("vgg16", 32, weights=3)


def test_saved_classifier_as_source_reuses_base_and_replaces_head(tmp_path):
    source = ttf.ImageClassifier.from_backbone("resnet50", num_classes=3, image_size=32, weights=None)
    x, y = separable_data(12, 32, 3)
    ttf.fine_tune(source, (x, y), head_epochs=1, fine_tune_epochs=1, verbose=0)
    source.save(tmp_path / "source_run")

    # A new task: other classes, another image size, the same base weights.
    target = ttf.ImageClassifier.from_backbone(
        "resnet50", class_names=["a", "b"], image_size=48, weights=str(tmp_path / "source_run"))
    for got, want in zip(target.base.get_weights(), source.base.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert target.head.output.shape[-1] == 2
    assert target.base.trainable is False
    images = random_images(2, 32)
    same_size = build_base("resnet50", 32, weights=ttf.load(tmp_path / "source_run"))
    np.testing.assert_array_equal(_outputs(same_size, images), _outputs(source.base, images))
    assert target.weights_source == str((tmp_path / "source_run").resolve())


def test_source_of_another_backbone_is_refused(tmp_path):
    ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None).save(tmp_path / "run")
    with pytest.raises(ValueError, match=r"built on vgg16, not vgg19.*backbone='vgg16'"):
        ttf.ImageClassifier.from_backbone("vgg19", num_classes=2, image_size=32, weights=tmp_path / "run")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, and an empty Keras cache."""
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    # Keras falls back to /tmp/.keras when its home folder does not exist.
    (tmp_path / "keras_home").mkdir()
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"


def test_imagenet_offline_gives_one_clear_error(offline):
    with pytest.raises(ttf.WeightsNotAvailableError) as caught:
        ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights="imagenet")
    message = str(caught.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(offline) in message
    assert "weights=PATH" in message and "put it in that folder" in message
    assert "work offline: --backbone efficientnet_lite0" in message  # the backbone that works here
    assert caught.value.__suppress_context__  # no chained Keras traceback


def test_the_default_backbone_has_imagenet_weights_offline():
    from transfer_tf.training.settings import ModelSettings

    spec = ttf.get_backbone(ModelSettings().backbone)
    assert spec.packaged_weights is not None and spec.imagenet_offline


def test_imagenet_with_a_corrupt_cached_file_is_the_same_clear_error(offline):
    offline.mkdir(parents=True)
    (offline / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"partial")
    with pytest.raises(ttf.WeightsNotAvailableError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        ttf.ImageClassifier.from_backbone("resnet50", num_classes=2, image_size=32, weights="imagenet")


def test_keras_cache_dir_follows_keras_home(offline):
    assert ttf.keras_cache_dir() == str(offline)
