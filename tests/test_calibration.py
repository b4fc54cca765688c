"""Temperature scaling: fitted on validation images, carried by every saved and exported file, top-1 unchanged."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, separable_data

import transfer_tf as ttf
from transfer_tf.evaluation.calibration import expected_calibration_error, reliability
from transfer_tf.evaluation.unknown import choose_unknown_threshold
from transfer_tf.exporting.runtimes import runner

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
    # The "unknown" threshold, chosen on the calibrated probabilities, keeps 95 % of these images.
    assert clf.unknown_threshold == result.unknown_threshold and result.known_kept == 0.95
    labels = ttf.predict_labels(clf, images, reject=True)
    kept = np.mean([label != "unknown" for label in labels])
    assert kept == pytest.approx(result.kept) and 0.95 <= kept < 1.0
    assert ttf.predict_labels(clf, images) == [clf.class_names[i] for i in after.argmax(1)]


def test_predict_labels_answers_unknown_below_the_threshold_only(overconfident):
    clf, validation = overconfident
    images = validation[0][:16]
    top = clf.predict(images, verbose=0).max(axis=1)
    clf.set_unknown_threshold(float(np.median(top)))
    labels = ttf.predict_labels(clf, images, reject=True)
    plain = ttf.predict_labels(clf, images)
    for label, guess, score in zip(labels, plain, top):
        assert label == ("unknown" if score < clf.unknown_threshold else guess)
    assert 0 < labels.count("unknown") < len(images)
    dataset = tf.data.Dataset.from_tensor_slices((images, validation[1][:16])).batch(5)
    assert ttf.predict_labels(clf, dataset, reject=True, unknown_label="?") == [
        "?" if label == "unknown" else label for label in labels]
    with pytest.raises(ValueError, match="names one of the classes. .*Received: unknown_label='0'"):
        ttf.predict_labels(clf, images, reject=True, unknown_label="0")
    with pytest.raises(ValueError, match=r"images must be an array \(n, 32, 32, 3\).*Received: images.shape"):
        ttf.predict_labels(clf, images[:, :16], reject=True)
    with pytest.warns(UserWarning, match="is cleared"):
        clf.set_temperature(clf.temperature * 2)
    assert clf.unknown_threshold is None
    with pytest.raises(ValueError, match="reject=True needs the classifier's unknown_threshold"):
        ttf.predict_labels(clf, images, reject=True)
    with pytest.raises(ValueError, match="Received: unknown_threshold=1.5"):
        clf.set_unknown_threshold(1.5)


def test_the_threshold_keeps_the_share_asked_for():
    scores = np.array([[p, 1 - p] for p in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)])
    assert choose_unknown_threshold(scores, 0.8) == pytest.approx(0.65, abs=1e-5)  # 0.55 and 0.6 below it
    assert choose_unknown_threshold(scores, 0.85) == pytest.approx(0.6, abs=1e-5)  # 1.5 images: only one below
    assert choose_unknown_threshold(scores, 1.0) <= 0.55
    with pytest.raises(ValueError, match="Received: known_kept=0"):
        choose_unknown_threshold(scores, 0)


def test_the_temperature_round_trips_through_save_load_and_export(overconfident, tmp_path):
    clf, validation = overconfident
    clf.set_temperature(2.5)
    clf.set_unknown_threshold(0.6)
    images = random_images(4, SIZE)
    expected = clf.predict(images, verbose=0)
    clf.save(tmp_path / "run")
    loaded = ttf.load(tmp_path / "run")
    assert loaded.temperature == 2.5 and loaded.unknown_threshold == 0.6
    assert json.loads((tmp_path / "run" / "config.json").read_text())["unknown_threshold"] == 0.6
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    data = ttf.data.from_arrays(validation[0], validation[1], loaded.class_names, validation_split=0.5)
    ttf.export(loaded, tmp_path / "export", precisions=["float32"], formats=["saved_model", "tflite", "onnx"],
               data=data, latency_repeats=1, verbose=0)
    for path in ("model_float32.tflite", "saved_model", "model.onnx"):
        np.testing.assert_allclose(runner(tmp_path / "export" / path)(images), expected, atol=1e-4, err_msg=path)
    card = json.loads((tmp_path / "export" / "model_card.json").read_text())["calibration"]
    assert card["temperature"] == 2.5 and card["unknown_threshold"] == 0.6 and "score_threshold" in card["unknown_rule"]
    assert ttf.load(tmp_path / "export" / "model.keras").unknown_threshold == 0.6


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
