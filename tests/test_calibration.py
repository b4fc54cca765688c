"""Temperature scaling: fitted on validation images, carried by every saved and exported file, top-1 unchanged."""

import json

import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.evaluation.calibration import expected_calibration_error, reliability
from transfer_tf.exporting.runtimes import runner

from conftest import random_images, separable_data

SIZE = 32


@pytest.fixture(scope="module")
def overconfident():
    """A classifier trained hard on few, noisy-labelled images: sure of itself, often wrong on new ones."""
    images, labels = separable_data(120, SIZE, 3)
    flipped = labels.copy()
    flipped[::4] = (flipped[::4] + 1) % 3  # a quarter of the labels wrong
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=SIZE, weights=None, seed=0)
    ttf.fine_tune(clf, (images[:60], flipped[:60]), head_epochs=30, fine_tune_epochs=0, head_lr=1e-2,
                  batch_size=16, seed=0, verbose=0)
    return clf, (images[60:], flipped[60:])


def test_calibration_lowers_the_error_and_keeps_every_top1(overconfident):
    clf, validation = overconfident
    images = validation[0]
    before = clf.predict(images, verbose=0)
    result = ttf.calibrate(clf, validation)
    after = clf.predict(images, verbose=0)
    assert clf.temperature == result.temperature != 1.0
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))
    assert result.nll_after < result.nll_before and result.ece_after < result.ece_before
    assert result.ece_before == pytest.approx(expected_calibration_error(before, validation[1]), abs=1e-6)
    assert result.ece_after == pytest.approx(expected_calibration_error(after, validation[1]), abs=1e-5)
    assert sum(result.reliability_after["count"]) == result.num_images == 60
    figure = ttf.plots.plot_reliability(result)
    assert len(figure.axes) == 2


def test_the_temperature_round_trips_through_save_load_and_export(overconfident, tmp_path):
    clf, validation = overconfident
    clf.set_temperature(2.5)
    images = random_images(4, SIZE)
    expected = clf.predict(images, verbose=0)
    clf.save(tmp_path / "run")
    loaded = ttf.load(tmp_path / "run")
    assert loaded.temperature == 2.5
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    data = ttf.data.from_arrays(validation[0], validation[1], loaded.class_names, validation_split=0.5)
    ttf.export(loaded, tmp_path / "export", precisions=["float32"], formats=["saved_model", "tflite", "onnx"],
               data=data, latency_repeats=1, verbose=0)
    for path in ("model_float32.tflite", "saved_model", "model.onnx"):
        np.testing.assert_allclose(runner(tmp_path / "export" / path)(images), expected, atol=1e-4, err_msg=path)
    assert json.loads((tmp_path / "run" / "config.json").read_text())  # written
    assert ttf.load(tmp_path / "export" / "model.keras").temperature == 2.5


def test_a_temperature_of_one_leaves_the_scores_bit_for_bit():
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=SIZE, weights=None)
    images = random_images(3, SIZE)
    raw = clf.head(clf.base(clf.preprocessor(images), training=False)).numpy()
    np.testing.assert_array_equal(clf.predict_on_batch(images), raw)


def test_binary_scores_are_scaled_on_their_logit():
    layer = ttf.TemperatureScaling("binary", 2.0)
    p = np.array([[0.9], [0.2]], np.float32)
    logit = np.log(p / (1 - p))
    np.testing.assert_allclose(np.asarray(layer(p)), 1 / (1 + np.exp(-logit / 2.0)), rtol=1e-5)


def test_ece_of_a_hand_made_example():
    # Two bins used: confidence 0.9 (3 images, 2 right) and 0.6 (1 image, right).
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.4, 0.6]])
    labels = np.array([0, 0, 0, 1])
    expected = (3 * abs(0.9 - 2 / 3) + 1 * abs(0.6 - 1.0)) / 4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected)
    assert sum(reliability(probabilities, labels)["count"]) == 4


@pytest.mark.parametrize("temperature", [0, -1, "warm", float("inf")])
def test_bad_temperatures_are_refused(temperature):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=SIZE, weights=None)
    with pytest.raises(ValueError, match="temperature must be a number > 0. Received"):
        clf.set_temperature(temperature)


def test_multilabel_one_class_validation_and_other_classifiers_are_refused():
    multilabel = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=SIZE, weights=None,
                                                   task="multilabel")
    with pytest.raises(ValueError, match="Received: task='multilabel'"):
        ttf.calibrate(multilabel, (random_images(4, SIZE), np.zeros((4, 3))))
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=SIZE, weights=None)
    with pytest.raises(ValueError, match="at least two classes"):
        ttf.calibrate(clf, (random_images(4, SIZE), np.zeros(4, int)))
    assert clf.temperature == 1.0
    with pytest.raises(TypeError, match="Received: str"):
        ttf.calibrate("saved_models/run", (random_images(4, SIZE), np.zeros(4, int)))
