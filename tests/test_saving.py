"""Run folders: complete, safe to open, and identical after loading."""

import json
import zipfile

import keras
import numpy as np
import pytest

import transfer_tf as ttf

from conftest import random_images, separable_data, weight_groups


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    clf = ttf.ImageClassifier.from_backbone("mobilenetv2", class_names=["cat", "dog"], image_size=32, weights=None)
    x, y = separable_data(8, 32, 2)
    ttf.fine_tune(clf, (x, y), (x, y), head_epochs=1, fine_tune_epochs=1, verbose=0)
    run = tmp_path_factory.mktemp("runs") / "pets"
    clf.save(run)
    return clf, run


def test_run_folder_contents(trained):
    clf, run = trained
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "history.json", "labels.txt", "model.keras"]
    assert (run / "labels.txt").read_text().splitlines() == ["cat", "dog"]
    config = json.loads((run / "config.json").read_text())
    assert config["backbone"] == "mobilenetv2" and config["image_size"] == [32, 32]
    assert config["class_names"] == ["cat", "dog"] and config["task"] == "multiclass"
    assert config["weights"] is None and config["training"]["head_epochs"] == 1
    assert {"tensorflow", "keras", "transfer_tf", "python"} <= set(config["versions"])
    history = json.loads((run / "history.json").read_text())
    assert history["phase_boundary"] == 1 and len(history["history"]["loss"]) == 2


def test_load_predicts_exactly_the_same(trained):
    clf, run = trained
    same = ttf.load(run)
    assert isinstance(same, ttf.ImageClassifier)
    images = random_images(4, 32)
    np.testing.assert_array_equal(same.predict(images, verbose=0), clf.predict(images, verbose=0))
    assert same.class_names == ["cat", "dog"]
    assert same.training_record.phases[1].name == "fine_tune"


def test_run_folder_holds_no_optimizer_state_and_the_classifier_keeps_it(trained):
    clf, run = trained
    assert clf.optimizer is not None and clf.optimizer.built  # the trained phase's Adam
    groups = weight_groups(run / "model.keras")
    assert "optimizer" not in groups and "layers" in groups
    assert clf.optimizer.variables  # saving detached it only for the while


def test_saved_model_needs_no_code_and_loads_in_safe_mode(trained):
    _, run = trained
    with zipfile.ZipFile(run / "model.keras") as archive:
        config = archive.read("config.json").decode()
    assert '"Lambda"' not in config and "__lambda__" not in config
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert isinstance(model, ttf.ImageClassifier)


def test_a_model_holding_code_is_refused(tmp_path):
    inputs = keras.Input((4,))
    evil = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    evil.save(tmp_path / "evil.keras")
    with pytest.raises(ValueError, match="Could not load .*evil.keras"):
        ttf.load(tmp_path / "evil.keras")


def test_untrained_save_has_no_history_and_replaces_a_stale_one(trained, tmp_path):
    _, run = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    fresh = ttf.ImageClassifier.from_backbone("mobilenetv2", num_classes=2, image_size=32, weights=None)
    fresh.save(copy)
    assert not (copy / "history.json").exists()
    assert ttf.load(copy).training_record is None


def test_missing_or_damaged_run_folders(tmp_path, trained):
    _, run = trained
    with pytest.raises(FileNotFoundError, match="No transfer_tf run folder"):
        ttf.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.keras is missing"):
        ttf.load(tmp_path / "empty")

    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    data = (damaged / "model.keras").read_bytes()
    (damaged / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged"):
        ttf.load(damaged)

    bad_config = tmp_path / "bad_config"
    shutil.copytree(run, bad_config)
    (bad_config / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is damaged"):
        ttf.load(bad_config)


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(keras.Model, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        clf.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_overwrite_when_asked_and_refuses_a_file(tmp_path, trained):
    clf, run = trained
    with pytest.raises(FileExistsError, match="overwrite=True"):
        clf.save(run, overwrite=False)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="must be a folder"):
        clf.save(target)


def test_single_keras_file_round_trip(tmp_path):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    clf.save(tmp_path / "model.keras")
    images = random_images(2, 32)
    np.testing.assert_array_equal(
        ttf.load(tmp_path / "model.keras").predict(images, verbose=0), clf.predict(images, verbose=0))
