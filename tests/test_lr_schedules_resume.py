"""The learning-rate finder, discriminative rates, schedules, and resuming a killed run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.training.lr_finder import _Sweep, suggest
from transfer_tf.training.schedules import DiscriminativeAdam, OneCycle, block_rates

from conftest import separable_data, train_to_resume
from image_files import write_class_folder

TESTS = Path(__file__).resolve().parent


def _variables(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.variables]


def test_the_sweep_recovers_each_batch_loss_from_keras_running_mean():
    sweep = _Sweep([1e-3] * 4)
    sweep.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    sweep.model.compile(optimizer="adam", loss="mse")
    for batch, running_mean in enumerate([0.0, 0.0, 100 / 3, 50.0]):  # losses 0, 0, 100, 100
        sweep.on_train_batch_begin(batch)
        sweep.on_train_batch_end(batch, {"loss": running_mean})
    np.testing.assert_allclose(sweep.losses, [0, 0, 100, 100], atol=1e-9)
    assert sweep.model.stop_training  # 100 is far above 4 x the best smoothed loss


def test_suggestions_follow_fastai():
    rates = np.geomspace(1e-6, 1, 100)
    losses = 2.0 - np.tanh((np.log10(rates) + 3.0) * 1.5) + np.where(rates > 0.1, 40 * (rates - 0.1), 0)
    found = suggest(rates, losses)
    assert 1e-4 < found["steep"] < 1e-2  # the steepest descent is around 1e-3
    assert found["minimum"] == pytest.approx(rates[10:95][np.argmin(losses[10:95])] / 10)
    assert 1e-4 < found["valley"] < found["minimum"] * 10


def test_find_lr_leaves_the_classifier_as_it_was(tmp_path):
    x, y = separable_data(64, 32, 2)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    ttf.fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=0, verbose=0)  # compiled, optimizer built
    before, optimizer = _variables(clf), _variables(clf.optimizer)
    flags = [layer.trainable for layer in ttf.all_layers(clf.base)]
    for phase in ("head", "fine_tune"):
        result = ttf.find_lr(clf, (x, y), phase=phase, steps=40, verbose=False)
        assert set(result.suggestions) == {"valley", "minimum", "steep"}
        assert all(1e-7 <= r <= 10 for r in result.suggestions.values())
        assert len(result.losses) == len(result.learning_rates) <= 40
        assert result.learning_rates == sorted(result.learning_rates)
    for a, b in zip(before, _variables(clf)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(optimizer, _variables(clf.optimizer)):
        np.testing.assert_array_equal(a, b)
    assert flags == [layer.trainable for layer in ttf.all_layers(clf.base)]
    figure = result.plot(path=tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0 and figure.axes[0].get_xscale() == "log"


def test_find_lr_sweeps_the_whole_range_on_a_set_of_one_batch():
    # A set of one batch once got 10 steps (10 passes at most), 4 usable points and a rate of 6e-6 at which
    # the head learned nothing; fastai repeats the data for all its steps.
    x, y = separable_data(24, 32, 3)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=32, weights=None)
    result = ttf.find_lr(clf, (x, y), steps=60, verbose=False, seed=0)
    assert len(result.learning_rates) > 40
    assert result.suggestions["valley"] > 1e-4


def test_fine_tune_finds_both_rates_and_records_them():
    x, y = separable_data(64, 32, 2)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    result = ttf.fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=1, head_lr="find",
                           fine_tune_lr="find", verbose=0)
    found = result.settings["found_learning_rates"]
    assert set(found) == {"head", "fine_tune"}
    assert [p.learning_rate for p in result.phases] == pytest.approx([found["head"], found["fine_tune"]])


def test_discriminative_adam_scales_each_variables_step():
    a, b = keras.Variable(np.zeros(3, np.float32)), keras.Variable(np.zeros(3, np.float32))
    optimizer = DiscriminativeAdam(lambda v: 0.1 if v is b else 1.0, learning_rate=1e-2)
    optimizer.apply([np.ones(3, np.float32), np.ones(3, np.float32)], [a, b])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), 0.1 * keras.ops.convert_to_numpy(a), rtol=1e-5)
    assert block_rates(["block4", "block5"], 1e-5, 1e-3) == pytest.approx({"block4": 1e-5, "block5": 1e-3})
    assert block_rates(["a", "b", "c"], 1e-4, 1e-2)["b"] == pytest.approx(1e-3)


class Rates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        rate = self.model.optimizer.learning_rate
        self.rates.append(float(rate(self.model.optimizer.iterations) if callable(rate) else rate))


def test_schedules_and_discriminative_rates_in_fine_tune():
    x, y = separable_data(64, 32, 2)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    rates = Rates()
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in clf.base.weights}
    result = ttf.fine_tune(clf, (x, y), head_epochs=2, fine_tune_epochs=2, head_lr=1e-2,
                           head_schedule="one_cycle", fine_tune_schedule="cosine", unfreeze_blocks=2,
                           fine_tune_lr=(1e-5, 1e-3), batch_size=16, callbacks=[rates], verbose=0)
    head, tune = rates.rates[:8], rates.rates[8:]
    assert head[0] == pytest.approx(1e-2 / 25, rel=1e-3) and max(head) == pytest.approx(1e-2, rel=0.2)
    assert head[-1] < head[2]  # warms up, then anneals
    assert tune[0] == pytest.approx(0.0, abs=1e-12) and max(tune) == pytest.approx(1e-3, rel=1e-3)
    assert result.settings["fine_tune_lr"] == [1e-5, 1e-3]
    assert result.settings["fine_tune_schedule"] == "cosine"
    groups = ttf.block_layers(clf.base, clf.backbone_spec)
    moved = {block: max(float(np.abs(before[w.path] - keras.ops.convert_to_numpy(w)).max())
                        for layer in groups[block] for w in layer.weights) for block in ("block4", "block5")}
    assert 0 < moved["block4"] < moved["block5"]  # the lower block moved less, at 1/100 of the rate


def test_one_cycle_shape():
    schedule = OneCycle(1.0, 100, warmup_fraction=0.25)
    values = [float(schedule(step)) for step in range(100)]
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(values[25], rel=1e-6)
    assert values[-1] < 1e-3 and keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)).get_config() == schedule.get_config()


# -- resume after a kill ---------------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import transfer_tf  # first, as every user script should
    import keras, numpy as np
    from conftest import train_to_resume

    class Slow(keras.callbacks.Callback):  # epochs long enough for the test to kill one
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.4)

    np.savez(sys.argv[2], *train_to_resume(sys.argv[1], sys.argv[3], [Slow()]))
""")


def _script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.format(tests=str(TESTS)))
    return path


def _kill_when(process, condition, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("phase, cache", [("head", "memory"), ("fine_tune", "off")])
def test_a_run_killed_in_a_phase_resumes_and_ends_as_an_uninterrupted_one(tmp_path, phase, cache):
    script = _script(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    reference = train_to_resume(None, cache)  # the run never killed
    backup = tmp_path / "backup"
    running = subprocess.Popen([sys.executable, str(script), str(backup), str(tmp_path / "x.npz"), cache],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metadata = backup / phase / "training_metadata.json"
    assert _kill_when(running, lambda: metadata.is_file() and json.loads(metadata.read_text())["epoch"]
                      >= (1 if phase == "head" else 5)), "the run ended before it could be killed"
    state = json.loads((backup / "state.json").read_text())
    assert phase not in state["finished"]  # killed inside the phase
    assert not (tmp_path / "x.npz").exists()
    epochs = []
    ran = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))
    resumed = train_to_resume(backup, cache, [ran])  # here, from what the killed process left on disk
    assert epochs and epochs[-1] == 7 and len(epochs) < (8 if phase == "head" else 4)  # it did not start over
    for a, b in zip(reference, resumed, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_resume_with_other_settings_is_refused(tmp_path):
    x, y = separable_data(16, 32, 2)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    ttf.fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=0, verbose=0, backup_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="other settings .*settings.*differ"):
        ttf.fine_tune(clf, (x, y), head_epochs=2, fine_tune_epochs=0, verbose=0, backup_dir=tmp_path / "b")


@pytest.mark.slow
def test_cli_train_refuses_an_unfinished_run_and_resumes_it(tmp_path, capsys):
    folder = tmp_path / "shapes"
    write_class_folder(folder, ["dark", "light"], per_class=40, value_of=lambda label: 40 + 150 * label)
    out = tmp_path / "run"
    args = ["train", str(folder), "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
            "--head-epochs", "3", "--fine-tune-epochs", "3", "--feature-cache", "off", "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    running = subprocess.Popen([sys.executable, "-m", "transfer_tf.cli", *args, "--quiet"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metadata = out / ".unfinished" / "fine_tune" / "training_metadata.json"
    assert _kill_when(running, metadata.is_file), "the run ended before it could be killed"
    assert not (out / "model.keras").exists() and not (out / "config.json").exists()
    assert cli.main(args) == 1
    assert "holds an unfinished run" in capsys.readouterr().err
    assert cli.main([*args, "--resume", "--quiet"]) == 0
    assert (out / "model.keras").is_file() and not (out / ".unfinished").exists()
    history = json.loads((out / "history.json").read_text())
    assert [p["epochs"] for p in history["phases"]] == [3, 3] and len(history["history"]["loss"]) == 6
    # An uninterrupted run of the same command ends where the resumed one did (the same in another process:
    # test_reproducible_runs.py).
    reference = tmp_path / "uninterrupted"
    assert cli.main([*args[:-1], str(reference), "--quiet"]) == 0
    expected = json.loads((reference / "history.json").read_text())["history"]
    for key, values in expected.items():
        np.testing.assert_allclose(history["history"][key], values, atol=1e-5, err_msg=key)
    resumed, uninterrupted = ttf.load(out), ttf.load(reference)
    for a, b in zip(resumed.weights, uninterrupted.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)


def test_cli_lr_find_on_a_folder_and_on_a_run(tmp_path, capsys):
    folder = tmp_path / "shapes"
    write_class_folder(folder, ["dark", "light"], per_class=24, value_of=lambda label: 40 + 150 * label)
    model = ["--backbone", "vgg16", "--weights", "none", "--image-size", "32"]
    plot = tmp_path / "sweep.png"
    assert cli.main(["lr-find", str(folder), *model, "--steps", "30", "--plot", str(plot), "--quiet"]) == 0
    assert "Suggested learning rate (head):" in capsys.readouterr().out and plot.stat().st_size > 0

    run = tmp_path / "run"
    assert cli.main(["train", str(folder), *model, "--head-epochs", "1", "--fine-tune-epochs", "0",
                     "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["lr-find", str(run), "--phase", "fine_tune", "--steps", "20", "--json"]) == 0
    sweep = json.loads(capsys.readouterr().out)
    assert sweep["phase"] == "fine_tune" and 0 < sweep["suggestions"]["valley"] < 10

    assert cli.main(["lr-find", str(tmp_path / "missing")]) == 1
    assert "No run folder or image folder at" in capsys.readouterr().err
