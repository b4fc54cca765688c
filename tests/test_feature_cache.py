"""Cached features: the same training as the uncached path, faster; keyed, reused, refused."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import transfer_tf as ttf
from transfer_tf.core import integrity as ttf_integrity
from transfer_tf.training import feature_cache

from conftest import separable_data


def noisy_folder(root, classes=3, per_class=8, size=40, seed=0):
    """PNG files whose class sets their brightness, each with its own noise."""
    rng = np.random.default_rng(seed)
    for label in range(classes):
        folder = Path(root) / f"class_{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(40 + 80 * label, 25, (size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:02d}.png")
    return Path(root)


def classifier(seed=0, num_classes=3, size=32, dtype=None):
    keras.utils.set_random_seed(seed)
    return ttf.ImageClassifier.from_backbone("vgg16", num_classes=num_classes, image_size=size,
                                             weights=None, dtype=dtype)


def weights_of(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def assert_same_training(a, b, result_a, result_b):
    for wa, wb in zip(weights_of(a), weights_of(b)):
        np.testing.assert_allclose(wa, wb, atol=1e-5, rtol=1e-5)
    assert result_a.history.keys() == result_b.history.keys()
    for key in result_a.history:
        np.testing.assert_allclose(result_a.history[key], result_b.history[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("unfreeze, cached_phases", [(1, ["head", "fine_tune"]), ("all", ["head"]),
                                                     ("block5_conv3", ["head", "fine_tune"])])
def test_cached_phases_train_exactly_as_the_uncached_path(unfreeze, cached_phases):
    x, y = separable_data(48, 32, 3)
    vx, vy = separable_data(15, 32, 3, seed=1)
    runs = {}
    for mode in ("off", "memory"):
        clf = classifier()
        before = weights_of(clf.base)
        result = ttf.fine_tune(clf, (x, y), (vx, vy), head_epochs=2, fine_tune_epochs=2,
                               unfreeze_blocks=unfreeze, batch_size=16, seed=0, verbose=0,
                               feature_cache=mode)
        runs[mode] = clf, result, before
    (plain, plain_result, before), (cached, cached_result, _) = runs["off"], runs["memory"]
    assert plain_result.cache["used"] is False
    assert cached_result.cache["used"] is True and cached_result.cache["phases"] == cached_phases
    assert cached_result.cache["cut"] == {1: "block5", "all": None}.get(unfreeze, unfreeze)
    assert_same_training(plain, cached, plain_result, cached_result)
    # Something trained in phase 2 (the comparison above is not between two untouched models).
    moved = [not np.array_equal(b, a) for b, a in zip(before, weights_of(cached.base))]
    assert any(moved)
    if unfreeze == "block5_conv3":  # a unit: only its layer moved, not the rest of block5
        paths = [w.path for w in cached.base.weights]
        assert sorted({p.split("/")[0] for p, m in zip(paths, moved) if m}) == ["block5_conv3"]
    assert [p.trainable_params for p in plain_result.phases] == [
        p.trainable_params for p in cached_result.phases]


def test_file_datasets_replay_their_order_whatever_the_global_seed(tmp_path):
    folder = noisy_folder(tmp_path / "images")
    runs = {}
    for mode in ("off", "auto"):
        keras.utils.set_random_seed(3)  # the loader's shuffle seeds depend on it
        splits = ttf.data.from_directory(folder, image_size=32, validation_split=0.25, batch_size=8,
                                         verbose=False)
        clf = classifier()
        runs[mode] = clf, ttf.fine_tune(clf, splits.train, splits.validation, head_epochs=2,
                                        fine_tune_epochs=1, seed=0, verbose=0, feature_cache=mode)
    assert runs["auto"][1].cache["location"] == "memory"
    assert_same_training(runs["off"][0], runs["auto"][0], runs["off"][1], runs["auto"][1])


def test_augmented_or_foreign_data_falls_back_and_says_why(tmp_path, capsys):
    folder = noisy_folder(tmp_path / "images", per_class=4)
    augmented = ttf.data.from_directory(folder, image_size=32, augment="light", batch_size=8,
                                        verbose=False)
    result = ttf.fine_tune(classifier(), augmented.train, augmented.validation, head_epochs=1,
                           fine_tune_epochs=0, verbose=2)
    assert "Features not cached: train_data is augmented" in capsys.readouterr().out
    assert result.cache == {**result.cache, "used": False}
    foreign = augmented.validation.map(lambda x, y: (x, y))  # a pipeline transfer_tf did not build
    result = ttf.fine_tune(classifier(), foreign, head_epochs=1, fine_tune_epochs=0, verbose=2)
    assert "did not build" in capsys.readouterr().out and not result.cache["used"]


def test_disk_cache_is_reused_and_keyed_on_weights_data_and_cut(tmp_path):
    x, y = separable_data(24, 32, 3)
    folder = tmp_path / "cache"

    def run(images=x, seed=0, unfreeze=1):
        clf = classifier(seed=seed)
        result = ttf.fine_tune(clf, (images, y), head_epochs=1, fine_tune_epochs=1,
                               unfreeze_blocks=unfreeze, batch_size=8, seed=0, verbose=0,
                               feature_cache=folder)
        return clf, result

    first, first_result = run()
    key_folder = Path(first_result.cache["location"])
    assert key_folder.parent == folder and not first_result.cache["reused"]
    assert sorted(p.name for p in key_folder.iterdir()) == [
        ".lock", "key.json", "train_activations.npy", "train_features.npy"]
    key = json.loads((key_folder / "key.json").read_text())
    assert key["cut"] == "block5"
    assert key["arrays"]["train_features.npy"]["shape"] == [24, 1, 1, 512]  # with its size and checksum
    assert key["arrays"]["train_features.npy"]["sha256"] == ttf_integrity.checksum(key_folder / "train_features.npy")
    again, again_result = run()
    assert again_result.cache["reused"] and again_result.cache["location"] == str(key_folder)
    assert_same_training(first, again, first_result, again_result)

    changed = x.copy()
    changed[0, 0, 0, 0] = 255 - changed[0, 0, 0, 0]
    keys = {first_result.cache["location"]}
    for result in (run(images=changed)[1], run(seed=1)[1], run(unfreeze=2)[1]):
        assert not result.cache["reused"]
        keys.add(result.cache["location"])
    assert len(keys) == 4  # other data, other base weights, other cut: each its own entry
    assert not list(folder.rglob("*.partial"))


def test_auto_goes_to_disk_when_the_cache_would_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "MEMORY_BUDGET", 1000)
    monkeypatch.setenv("TRANSFER_TF_CACHE", str(tmp_path / "cache"))
    x, y = separable_data(16, 32, 3)
    result = ttf.fine_tune(classifier(), (x, y), head_epochs=1, fine_tune_epochs=0, batch_size=8,
                           verbose=0)
    assert Path(result.cache["location"]).parent == tmp_path / "cache"
    assert result.cache["megabytes"] > 1000 / 2**20


def test_a_bad_cache_mode_is_refused_before_training():
    x, y = separable_data(8, 32, 3)
    clf = classifier()
    before = weights_of(clf)
    with pytest.raises(ValueError, match="Received: feature_cache='disk'"):
        ttf.fine_tune(clf, (x, y), head_epochs=1, verbose=0, feature_cache="disk")
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(clf)))



@pytest.mark.parametrize("unfreeze, fine_tune_epochs, cached", [
    (1, 1, True), ("block5_conv3", 1, True), (0, 1, True), ("all", 1, False), (1, 0, True), ("all", 0, True),
])
def test_training_leaves_the_validation_outputs_the_whole_model_gives(unfreeze, fine_tune_epochs, cached):
    x, y = separable_data(40, 32, 3)
    vx, vy = separable_data(14, 32, 3, seed=1)
    clf = classifier()
    result = ttf.fine_tune(clf, (x, y), (vx, vy), head_epochs=1, fine_tune_epochs=fine_tune_epochs,
                           unfreeze_blocks=unfreeze, batch_size=8, seed=0, verbose=0)
    if not cached:  # phase 2 trained the whole base: the cached base outputs are stale
        assert result.validation_outputs is None
        return
    np.testing.assert_allclose(result.validation_outputs.outputs, clf.predict(vx, verbose=0), atol=1e-5)
    assert "validation_outputs" not in result.to_dict()


def test_the_report_runs_no_model_over_the_validation_images_training_scored(tmp_path, monkeypatch):
    from transfer_tf.evaluation import report
    from transfer_tf.evaluation.predictions import predict_dataset, predictions_from_outputs

    splits = ttf.data.from_directory(noisy_folder(tmp_path / "data", per_class=10), image_size=32,
                                     validation_split=0.4, batch_size=8, verbose=False)
    clf = ttf.ImageClassifier.from_backbone("vgg16", class_names=splits.class_names, image_size=32, weights=None,
                                            seed=0)
    result = ttf.fine_tune(clf, splits.train, splits.validation, head_epochs=1, fine_tune_epochs=1, seed=0,
                           verbose=0)
    for temperature in (1.0, 2.0):  # calibrated later: the outputs are scaled as the model's are
        clf.set_temperature(temperature)
        full = predict_dataset(clf, splits.validation, keep_mistakes=16)
        left = predictions_from_outputs(clf, splits.validation, result.validation_outputs, keep_mistakes=16)
        np.testing.assert_allclose(left.scores, full.scores, atol=1e-5)
        np.testing.assert_array_equal(left.labels, full.labels)
        assert full.mistakes and [i for i, _ in left.mistakes] == [i for i, _ in full.mistakes]
        for (_, ours), (_, theirs) in zip(left.mistakes, full.mistakes):
            np.testing.assert_array_equal(ours, theirs)
    assert predictions_from_outputs(clf, splits.train, result.validation_outputs) is None  # other images

    clf.save(tmp_path / "run", data_summary=splits.to_dict())
    monkeypatch.setattr(report, "predict_dataset", lambda *args, **kwargs: pytest.fail("ran the model"))
    report.write_report(tmp_path / "run", splits, classifier=clf, validation_outputs=result.validation_outputs,
                        verbose=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_images"] == len(full.labels)
    assert metrics["accuracy"] == pytest.approx(np.mean(full.scores.argmax(1) == full.labels))
