"""Training from scratch moves every weight and BatchNorm statistic; the demo runs."""

import json

import keras
import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.cli import demo
from transfer_tf.model.freezing import all_layers, is_batchnorm

from conftest import separable_data

QUICK_FORMATS = ("saved_model", "tflite")


def test_train_from_scratch_trains_everything_with_batchnorm_in_training_mode():
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=2, image_size=32, weights=None)
    before = [w.copy() for w in clf.get_weights()]
    bn = [l for l in all_layers(clf.base) if is_batchnorm(l)]
    moving_before = [l.moving_mean.numpy().copy() for l in bn]
    x, y = separable_data(16, 32, 2)
    result = ttf.train_from_scratch(clf, (x, y), epochs=1, batch_size=8, verbose=0)
    after = clf.get_weights()
    moved = [not np.array_equal(b, a) for b, a in zip(before, after)]
    assert all(moved), f"{moved.count(False)} of {len(moved)} weights did not move"
    assert all(l.momentum == 0.9 for l in bn)
    assert all(not np.array_equal(b, l.moving_mean.numpy()) for b, l in zip(moving_before, bn))
    assert result.phases[0].name == "from_scratch" and len(result.history["loss"]) == 1
    assert clf.training_record is result


def test_train_from_scratch_keeps_momentum_when_asked():
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=2, image_size=32, weights=None)
    x, y = separable_data(8, 32, 2)
    # epochs=0: the momentum is set (or kept) before any training step.
    ttf.train_from_scratch(clf, (x, y), epochs=0, bn_momentum=None, verbose=0)
    assert {l.momentum for l in all_layers(clf.base) if is_batchnorm(l)} == {0.999}
    with pytest.raises(ValueError, match="Received: bn_momentum=1.5"):
        ttf.train_from_scratch(clf, (x, y), bn_momentum=1.5)


def test_digit_domains_do_not_overlap():
    images, labels = demo.load_digits()
    (sx, sy, snames), (tx, ty, tnames), (ex, ey, _) = demo.digit_domains(
        images, labels, target_per_class=30, seed=0)
    assert snames == ["0", "1", "2", "3", "4"] and tnames == ["5", "6", "7", "8", "9"]
    assert len(sx) == 2500 and len(tx) == 150 and len(ex) == 2350
    assert np.bincount(ty).tolist() == [30] * 5
    # No labelled target image is also a held-out one.
    held_out = {img.tobytes() for img in ex}
    assert not any(img.tobytes() in held_out for img in tx)
    (few_x, few_y, _), target, _ = demo.digit_domains(images, labels, target_per_class=30, source_per_class=40,
                                                      seed=0)
    assert np.bincount(few_y).tolist() == [40] * 5 and len({img.tobytes() for img in few_x}) == 200
    np.testing.assert_array_equal(target[0], tx)  # the target images do not depend on the source's
    with pytest.raises(ValueError, match="Received: source_per_class=0"):
        demo.digit_domains(images, labels, target_per_class=30, source_per_class=0, seed=0)


@pytest.mark.slow
def test_digits_demo_runs_end_to_end_and_saves(tmp_path):
    scenario = demo.DigitsDemo(source_epochs=1, source_per_class=40, head_epochs=1, fine_tune_epochs=1,
                               target_per_class=5)
    # One precision, no ONNX or OpenVINO: test_export*.py test them; `.ci/run` runs the whole demo.
    record = demo.run_demo(scenario, out=tmp_path / "demo", parity_images=100, precisions=["float32"],
                           formats=QUICK_FORMATS, verbose=0)
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["gain"]["accuracy"] == pytest.approx(
        saved["transfer"]["accuracy"] - saved["from_scratch"]["accuracy"])
    assert saved["target_test_images"] == 2500 - 25 and saved["scenario"] == "digits"
    assert record["transfer"]["num_images"] == 2475
    card = json.loads((tmp_path / "demo" / "export" / "model_card.json").read_text())
    assert card["metrics"]["held_out"]["images"] == 100
    assert [p.name for p in (tmp_path / "demo" / "export").glob("*.tflite")] == ["model_float32.tflite"]
    clf = ttf.load(tmp_path / "demo")
    assert clf.class_names == ["5", "6", "7", "8", "9"]
    assert clf.weights_source is not None  # the source model, not random init
    assert ttf.load(tmp_path / "demo" / "source").class_names == ["0", "1", "2", "3", "4"]


@pytest.mark.slow
def test_elpv_demo_fine_tunes_imagenet_lite0_against_scratch(tmp_path):
    scenario = demo.ElpvDemo(image_size=32, labelled=40, head_epochs=1, fine_tune_epochs=1)
    record = demo.run_demo(scenario, out=tmp_path / "demo", parity_images=50, precisions=["int8"],
                           formats=QUICK_FORMATS, verbose=0)
    assert record["scenario"] == "elpv" and record["settings"]["weights"] == "imagenet"
    assert record["target_train_images"] == 40 and record["target_test_images"] == 2624 - 40
    assert record["from_scratch"]["num_images"] == record["transfer"]["num_images"] == 2584
    clf = ttf.load(tmp_path / "demo")
    assert clf.backbone_name == "efficientnet_lite0" and clf.weights_source == "imagenet"
    assert clf.class_names == ["functional", "defective"]
    assert [p.name for p in clf.training_record.phases] == ["head", "fine_tune"]
    assert clf.training_record.settings["class_weight"] == "balanced"
    assert [p.name for p in (tmp_path / "demo" / "export").glob("*.tflite")] == ["model_int8.tflite"]


def test_demo_models_are_seeded_whatever_ran_before():
    scenario = demo.DigitsDemo()
    first = demo.seeded_classifier(scenario, ["a", "b"], weights=None, seed=3)
    np.random.default_rng().random(10)
    keras.random.uniform((5,))
    ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    again = demo.seeded_classifier(scenario, ["a", "b"], weights=None, seed=3)
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = demo.seeded_classifier(scenario, ["a", "b"], weights=None, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights()))


def test_unknown_demo_scenario_is_refused():
    with pytest.raises(ValueError, match="Received: scenario='cats'"):
        demo.run_demo("cats")
