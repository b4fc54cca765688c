"""tf.distribute: two replicas train as one device does; two workers train as one, write once and resume.

The jobs run in processes of their own (`distribute_job.py`): a strategy
must be made before any other TensorFlow op, and two workers are two
processes talking over localhost.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.model import distribute

ROOT = Path(__file__).resolve().parents[1]
JOB = Path(__file__).with_name("distribute_job.py")
TIMEOUT = 420  # seconds for one job; a hung collective fails the test instead of blocking the suite


def _env(tmp):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("TF_CONFIG", None)
    return env


def _job(result, name, *extra, strategy="none"):
    completed = subprocess.run([sys.executable, str(JOB), str(result), name, "--strategy", strategy, *extra],
                               env=_env(result), capture_output=True, text=True, timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return _read(result, name)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ",".join(map(str, ports))


def _start_workers(result, name, *extra, strategy="multi-worker"):
    ports = _free_ports(2)
    return [subprocess.Popen(
        [sys.executable, str(JOB), str(result), f"{name}{i}", "--strategy", strategy, "--worker", str(i),
         "--ports", ports, *extra],
        env=_env(result), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]


def _two_workers(result, name, *extra, strategy="multi-worker"):
    """Runs two workers of one cluster; returns their exit codes and standard errors."""
    processes = _start_workers(result, name, *extra, strategy=strategy)
    try:
        errors = [p.communicate(timeout=TIMEOUT)[1] for p in processes]
    finally:
        for p in processes:
            p.kill()
    return [p.returncode for p in processes], errors


def _read(result, name):
    summary = json.loads((result / f"{name}.json").read_text())
    path = result / f"{name}.npz"
    if path.is_file():
        arrays = np.load(path)
        count = len(summary["paths"])
        summary["before"] = [arrays[f"before/{i}"] for i in range(count)]
        summary["after"] = [arrays[f"after/{i}"] for i in range(count)]
    return summary


def _assert_same_training(run, reference, atol):
    assert run["paths"] == reference["paths"]
    for path, a, b in zip(run["paths"], run["after"], reference["after"]):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0, err_msg=path)
    np.testing.assert_allclose(run["loss"], reference["loss"], rtol=1e-4)
    # One batch in, one row per image out, whatever the strategy (Keras's own predict_on_batch
    # would run it on each replica and concatenate the copies).
    np.testing.assert_allclose(run["predictions"], reference["predictions"], atol=1e-5)
    assert run["evaluated"] == reference["evaluated"] == 20


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    """`reference(backbone, cache)`: that training on one device (no strategy), run once per module.

    It runs in the test's own process: without a strategy, nothing has to come before TensorFlow's first op.
    """
    import distribute_job

    runs = {}

    def reference(backbone, cache):
        if (backbone, cache) not in runs:
            result = tmp_path_factory.mktemp("single")
            assert distribute_job.main([str(result), "single", "--backbone", backbone, "--cache", cache]) == 0
            runs[backbone, cache] = _read(result, "single")
        return runs[backbone, cache]

    return reference


@pytest.mark.slow
@pytest.mark.parametrize("backbone,cache", [("mobilenetv3small", "auto"), ("vgg16", "off")])
def test_two_replicas_train_as_one_device(backbone, cache, single_device, tmp_path):
    reference = single_device(backbone, cache)
    mirrored = _job(tmp_path, "mirrored", "--backbone", backbone, "--cache", cache, strategy="mirrored")
    _assert_same_training(mirrored, reference, atol=1e-5)
    trainable, bn_stats = set(mirrored["trainable"]), set(mirrored["bn_stats"])
    moved = {path for path, a, b in zip(mirrored["paths"], mirrored["before"], mirrored["after"])
             if not np.array_equal(a, b)}
    assert moved and moved <= trainable  # the frozen layers and BatchNorm's statistics never moved
    assert not moved & bn_stats
    assert any("conv" in path for path in moved) and any("predictions" in path for path in moved)


@pytest.mark.slow
def test_two_workers_train_as_one_device_and_resume_after_a_kill(single_device, tmp_path):
    backup = tmp_path / "backup"
    model = ("--backbone", "vgg16", "--cache", "off")
    processes = _start_workers(tmp_path, "killed", *model, "--backup", str(backup), "--kill-after-epoch", "2",
                               "--kill-worker", "1")
    try:
        assert processes[1].wait(timeout=TIMEOUT) == 3  # worker 1 dies after phase 2's first epoch
        with contextlib.suppress(subprocess.TimeoutExpired):
            processes[0].wait(timeout=60)  # TensorFlow sees the lost heartbeats and stops the chief
    finally:
        for p in processes:  # or a cluster manager stops it, before it restarts the job
            p.kill()
            p.communicate()
    assert processes[0].returncode != 0
    state = json.loads((backup / "state.json").read_text())
    assert list(state["finished"]) == ["head"]
    assert (backup / "fine_tune").is_dir()

    codes, errors = _two_workers(tmp_path, "resumed", *model, "--backup", str(backup))
    assert codes == [0, 0], errors
    chief, other = _read(tmp_path, "resumed0"), _read(tmp_path, "resumed1")
    assert chief["chief"] and not other["chief"]
    for a, b in zip(chief["after"], other["after"]):
        np.testing.assert_array_equal(a, b)
    _assert_same_training(chief, single_device("vgg16", "off"), atol=1e-5)
    assert sorted(json.loads((backup / "state.json").read_text())["finished"]) == ["fine_tune", "head"]


@pytest.mark.slow
def test_two_workers_run_train_and_only_the_chief_writes(tmp_path):
    from PIL import Image

    data = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label, name in enumerate(["red", "green"]):
        (data / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 120, (40, 40, 3), dtype=np.uint8)
            pixels[..., label] += 120
            Image.fromarray(pixels).save(data / name / f"{i}.png")
    outs = [tmp_path / "run0", tmp_path / "run1"]  # one each, to see who writes
    codes, errors = _two_workers(tmp_path, "train", "--backbone", "vgg16", "--train-folder", str(data),
                                 str(tmp_path / "run{worker}"))
    assert codes == [0, 0], errors
    assert (outs[0] / "model.keras").is_file() and (outs[0] / "report.md").is_file()
    assert not (outs[0] / ".unfinished").exists()
    assert not outs[1].exists()
    assert not list(tmp_path.glob("transfer_tf_backup_*"))  # the other worker's private backup is gone
    losses = [_read(tmp_path, f"train{i}")["loss"] for i in range(2)]
    assert losses[0] == losses[1]


@pytest.mark.slow
def test_keras_fit_still_fails_under_multi_worker_without_the_fix(tmp_path):
    """If a Keras upgrade makes this fail, `distribute.multi_worker_fit` can go."""
    codes, errors = _two_workers(tmp_path, "unpatched", "--backbone", "vgg16", "--cache", "off",
                                 strategy="unpatched")
    assert codes == [1, 1], errors
    assert all("error" in _read(tmp_path, f"unpatched{i}") for i in range(2))


def test_a_classifier_built_outside_the_strategy_is_refused():
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    classifier = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    x, y = np.zeros((4, 32, 32, 3), np.float32), np.arange(4) % 2
    with pytest.raises(ValueError, match="not built in this strategy's scope.*strategy=MirroredStrategy"):
        ttf.fine_tune(classifier, (x, y), head_epochs=1, fine_tune_epochs=0, strategy=strategy, verbose=0)
    inside = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None,
                                               strategy=strategy)
    assert distribute.strategy_for(inside, None) is strategy


def test_several_workers_need_a_seeded_shuffle(monkeypatch):
    from transfer_tf.data.pipeline import array_dataset

    x, y = np.zeros((8, 32, 32, 3), np.float32), np.arange(8) % 2
    unseeded, seeded = (array_dataset(x, y, image_size=(32, 32), resize="stretch", batch_size=4, shuffle=True,
                                      seed=seed, augmentation=None) for seed in (None, 1))
    monkeypatch.setattr(distribute, "is_multi_worker", lambda strategy: True)
    distribute.check_same_order(object(), {"train_data": seeded})
    with pytest.raises(ValueError, match="shuffle train_data in the same order.*Received: seed=None"):
        distribute.check_same_order(object(), {"train_data": unseeded})


def test_strategy_names_are_checked(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable, which is not set"):
        distribute.make_strategy("multi-worker")
    with pytest.raises(ValueError, match="Received: strategy='tpu'"):
        distribute.make_strategy("tpu")
    assert distribute.make_strategy(None) is None


def test_cli_train_takes_a_strategy(tmp_path):
    from transfer_tf import cli

    from image_files import write_class_folder

    write_class_folder(tmp_path / "shapes", ["dark", "light"], per_class=16, value_of=lambda label: 40 + 150 * label)
    out = tmp_path / "run"
    assert cli.main(["train", str(tmp_path / "shapes"), "--backbone", "vgg16", "--weights", "none",
                     "--image-size", "32", "--head-epochs", "1", "--fine-tune-epochs", "1",
                     "--strategy", "mirrored", "--out", str(out), "--quiet"]) == 0
    assert (out / "model.keras").is_file() and ttf.load(out).num_classes == 2
    with pytest.raises(SystemExit):  # argparse refuses an unknown strategy
        cli.main(["train", str(tmp_path / "shapes"), "--strategy", "tpu"])
