"""ImageClassifier: raw pixels in, the head apart, config round trip."""

import keras
import numpy as np
import pytest

import transfer_tf as ttf

from conftest import random_images


def test_from_backbone_builds_frozen_base_and_separate_head():
    clf = ttf.ImageClassifier.from_backbone("mobilenetv2", class_names=["a", "b", "c"], image_size=32, weights=None)
    assert clf.base.trainable is False
    assert isinstance(clf.head, keras.Model)
    assert clf.head.input.shape[1:] == clf.base.output.shape[1:]
    assert clf.image_size == (32, 32)
    assert clf.num_classes == 3 and clf.class_names == ["a", "b", "c"]
    probabilities = clf.predict(random_images(4, 32), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_default_image_size_is_the_backbones():
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=2, weights=None)
    assert clf.image_size == (224, 224)


def test_raw_uint8_and_float_pixels_give_the_same_output():
    clf = ttf.ImageClassifier.from_backbone("resnet50", num_classes=2, image_size=32, weights=None)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        np.asarray(clf(pixels)), np.asarray(clf(pixels.astype("float32"))), rtol=1e-6)


def test_model_applies_the_backbone_preprocessing():
    clf = ttf.ImageClassifier.from_backbone("resnet50", num_classes=2, image_size=32, weights=None)
    images = random_images(2, 32)
    preprocessed = keras.applications.resnet.preprocess_input(images.copy())
    np.testing.assert_allclose(
        np.asarray(clf.extract_features(images)), np.asarray(clf.base(preprocessed, training=False)),
        rtol=1e-5, atol=1e-5)


def test_head_options():
    clf = ttf.ImageClassifier.from_backbone(
        "vgg16", num_classes=4, image_size=32, weights=None, pooling="max", dropout=0.5, hidden_units=(16, 8))
    names = [layer.name for layer in clf.head.layers]
    assert names == ["features", "max_pool", "dropout_0", "hidden_0", "dropout_1", "hidden_1", "dropout", "predictions"]
    assert clf.head.get_layer("dropout").rate == 0.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=3, task="binary"), "binary task has exactly 2 classes"),
    (dict(num_classes=1), "needs at least 2 classes"),
    (dict(num_classes=3, class_names=["a", "b"]), "num_classes=3 does not match the 2 class_names"),
    (dict(), "Pass num_classes or class_names"),
    (dict(num_classes=2, task="regression"), "task must be one of"),
    (dict(num_classes=2, pooling="sum"), "pooling must be one of"),
    (dict(num_classes=2, dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(class_names=["a", "a"]), "class_names must be unique"),
])
def test_bad_arguments_are_refused_with_what_was_received(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ttf.ImageClassifier.from_backbone("vgg16", image_size=32, weights=None, **kwargs)


def test_get_config_from_config_round_trip():
    clf = ttf.ImageClassifier.from_backbone("resnet50", class_names=["x", "y"], image_size=32, weights=None, task="binary")
    config = clf.get_config()
    rebuilt = ttf.ImageClassifier.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.class_names == ["x", "y"] and rebuilt.task == "binary"
    assert rebuilt.backbone_name == "resnet50" and rebuilt.preprocessing == "caffe"
    rebuilt.set_weights(clf.get_weights())
    images = random_images(3, 32)
    np.testing.assert_array_equal(np.asarray(rebuilt(images)), np.asarray(clf(images)))


def test_predict_on_batch_is_the_eager_call_traced_once():
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=3, image_size=32, weights=None)
    images = random_images(6, 32)
    np.testing.assert_array_equal(clf.predict_on_batch(images), keras.ops.convert_to_numpy(clf(images)))
    assert clf.predict_on_batch(images[:2]).shape == (2, 3)  # a last, shorter batch
    assert clf.predict_on_batch(images[:5]).shape == (5, 3)
    assert clf._inference.function.experimental_get_tracing_count() == 1  # not again for a shorter batch


def test_batch_function_traces_once_for_every_batch_size():
    from transfer_tf.model.inference import batch_function

    class Doubling(keras.layers.Layer):
        def call(self, x):
            traced.append(x.shape[0])  # runs only while TensorFlow traces
            return x * 2.0

    traced = []
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Doubling()(inputs))
    traced.clear()
    run = batch_function(model)
    for n in (8, 8, 3):  # full batches, then the last, smaller one
        np.testing.assert_allclose(run(np.ones((n, 4), np.float32)), 2.0)
    assert traced == [None]
