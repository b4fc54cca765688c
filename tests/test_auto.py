"""`auto`: a time budget that holds, recipes tried cheapest first, the test split read only at the end."""

import importlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import transfer_tf as ttf
from transfer_tf.core.budget import Budget, parse_budget
from transfer_tf.evaluation.auto_tables import auto_tables
from transfer_tf.training.deadline import StopBeforeDeadline


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_budgets_are_read_from_text_and_bad_ones_refused():
    assert [parse_budget(v) for v in (90, "90", "90s", "10m", "1.5h", "1h30m", " 2M ")] == [
        90, 90, 90, 600, 5400, 5400, 120]
    for bad in ("ten minutes", "10x", "", "0", "-5m", 0, "m"):
        with pytest.raises(ValueError, match="Received: budget="):
            parse_budget(bad)


def test_a_step_starts_only_if_its_estimate_fits_what_is_left():
    clock = FakeClock()
    budget = Budget(100, reserve=20, clock=clock)
    assert budget.plan("first", 50) is not None
    clock.now += 50
    assert budget.left() == 30
    assert budget.plan("too long", 31) is None
    assert budget.steps[-1].note == "skipped: would take about 31 s, 30 s left"
    assert budget.plan("a stage share", 20, within=10) is None
    assert budget.plan("fits", 30) is not None
    assert budget.deadline() == clock.now - 50 + 80


def test_training_stops_before_an_epoch_that_would_end_after_the_deadline():
    clock = FakeClock()

    class Tick(keras.callbacks.Callback):  # every epoch takes 10 s of the fake clock
        def on_epoch_end(self, epoch, logs=None):
            clock.now += 10

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int32)
    stop = StopBeforeDeadline(clock.now + 35, clock=clock)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[Tick(), stop])
    assert len(history.history["loss"]) == 3 and stop.stopped  # a 4th would end at 40 s
    late = StopBeforeDeadline(clock.now - 1, clock=clock)
    history = model.fit(x, y, epochs=10, batch_size=2, verbose=0, callbacks=[late])
    assert len(history.history["loss"]) == 1 and late.stopped


@pytest.fixture(scope="module")
def shades(tmp_path_factory):
    from image_files import write_class_folder

    folder = tmp_path_factory.mktemp("auto") / "shades"
    write_class_folder(folder, ["dark", "mid", "light"], per_class=20)
    return folder


def _fake_search(monkeypatch, budget_seconds, costs, accuracies):
    """`auto`'s recipe search on two bases with a fake clock: each trial costs what its estimate says.

    Returns the trials, the chosen one, the trials that ran, and the clock.
    """
    from types import SimpleNamespace

    from transfer_tf.evaluation import recipe_search
    from transfer_tf.evaluation.recipe_search import BaseCosts, Trial

    job = importlib.import_module("transfer_tf.cli.jobs.auto_choice")
    clock = FakeClock()
    budget = Budget(budget_seconds, reserve=10, clock=clock)
    ran = []

    def run_trial(recipe, splits, backbone, size, *, deadline, estimated, **kwargs):
        assert clock.now + estimated <= deadline  # it started only because its estimate fitted
        clock.now += estimated
        ran.append((recipe.name, size))
        trial = Trial(recipe.name, backbone, size, estimated, seconds=estimated,
                      validation_accuracy=accuracies[recipe.name, size], validation_loss=0.5)
        return trial, f"classifier of {recipe.name} at {size} px", None

    monkeypatch.setattr(recipe_search, "run_trial", run_trial)
    monkeypatch.setattr(recipe_search, "estimate", lambda recipe, *args: costs[recipe.name])
    monkeypatch.setattr(recipe_search, "top_share", lambda classifier, blocks: 0.5)
    counts = {"train": [10, 10], "validation": [5, 5]}
    ranked = [job._Candidate(SimpleNamespace(backbone="efficientnet_lite0", image_size=size),
                             SimpleNamespace(counts=counts), BaseCosts(0.01, 1.0, 1.0), object())
              for size in (48, 32)]
    trials, best, classifier = job._search(ranked, budget, "imagenet", 0, None, verbose=False)
    assert classifier == f"classifier of {best.recipe} at {best.image_size} px"
    return trials, best, ran, clock


COSTS = {"logistic": 10, "dense_head": 10, "top1": 20, "top2": 30, "top3": 40}


def test_auto_starts_no_recipe_whose_estimate_does_not_fit(monkeypatch):
    accuracies = {("logistic", 48): 0.6, ("dense_head", 48): 0.7, ("top1", 48): 0.8, ("top2", 48): 0.9,
                  ("top2", 32): 0.85}
    trials, best, ran, clock = _fake_search(monkeypatch, 110, COSTS, accuracies)
    # 100 s for recipes (10 kept back): 10 + 10 + 20 + 30 leave 30, too little for top3's 40;
    # the best recipe, top2, then fits on the second base exactly.
    assert ran == [("logistic", 48), ("dense_head", 48), ("top1", 48), ("top2", 48), ("top2", 32)]
    assert [(t.recipe, t.image_size) for t in trials] == ran[:4] + [("top3", 48), ("top2", 32)]
    assert trials[4].seconds is None and trials[4].note == "skipped: would take about 40 s, 30 s left"
    assert (best.recipe, best.image_size) == ("top2", 48)
    assert clock.now - 100 == 100  # the recipes spent exactly what was left for them


def test_auto_does_not_try_deeper_fine_tuning_after_a_shallower_one_lost(monkeypatch):
    accuracies = {("logistic", 48): 0.6, ("dense_head", 48): 0.8, ("top1", 48): 0.7, ("dense_head", 32): 0.9}
    trials, best, ran, _ = _fake_search(monkeypatch, 1000, COSTS, accuracies)
    assert ran == [("logistic", 48), ("dense_head", 48), ("top1", 48), ("dense_head", 32)]
    assert [t.note for t in trials[3:5]] == ["not tried: top1 did not beat dense_head"] * 2
    assert (best.recipe, best.image_size) == ("dense_head", 32)


def test_auto_refuses_a_budget_that_fits_no_recipe(monkeypatch):
    with pytest.raises(ValueError, match="too small to train any recipe: skipped: would take about 10 s, 5 s left.*"
                                         "Received: budget=15 s"):
        _fake_search(monkeypatch, 15, COSTS, {})


def test_auto_reads_the_test_split_last_and_writes_a_run_that_exports(shades, tmp_path, monkeypatch, capsys):
    """The whole command on a folder, two of the recipes: the classical head and fine-tuning."""
    from transfer_tf import cli

    job = importlib.import_module("transfer_tf.cli.jobs.auto_choice")
    monkeypatch.setattr(job, "RECIPES", tuple(r for r in job.RECIPES if r.name in ("logistic", "top1")))
    reads, final = [], {"started": False}
    real_read, real_report = job.from_directory, job.write_report

    def read_with_a_recorded_test_split(*args, **kwargs):
        splits = real_read(*args, **kwargs)
        test = splits.test

        def batches():
            for batch in test:
                reads.append(final["started"])
                yield batch
        splits.test = tf.data.Dataset.from_generator(batches, output_signature=test.element_spec)
        return splits

    def report(*args, **kwargs):
        final["started"] = True
        return real_report(*args, **kwargs)

    monkeypatch.setattr(job, "from_directory", read_with_a_recorded_test_split)
    monkeypatch.setattr(job, "write_report", report)
    run = tmp_path / "run"
    code = cli.main(["auto", str(shades), "--out", str(run), "--budget", "10m", "--test-split", "0.25", "--json",
                     "--candidates", "efficientnet_lite0:32,efficientnet_lite0:48"])
    assert code == 0, capsys.readouterr().err
    assert reads and all(reads), "the test split was read before the choice was made"

    record = json.loads(capsys.readouterr().out)
    assert record == json.loads((run / "auto.json").read_text()) and record["finished"]
    assert 0 < record["seconds"] <= 600
    assert [b["note"] for b in record["bases"]] == ["", ""]
    trials = record["trials"]
    assert [t["recipe"] for t in trials][:2] == ["logistic", "top1"] and len(trials) == 3
    assert all(0 <= t["validation_accuracy"] <= 1 and t["estimated_seconds"] > 0 and t["seconds"] > 0
               for t in trials)
    assert trials[1]["epochs"] and len(trials[1]["epochs"]) == 2  # the head, then the top block
    best = max(trials, key=lambda t: (t["validation_accuracy"], -t["validation_loss"]))
    assert (record["chosen"]["validation_accuracy"], record["chosen"]["validation_loss"]) == (
        best["validation_accuracy"], best["validation_loss"])
    assert record["test_accuracy"] == json.loads((run / "metrics.json").read_text())["accuracy"]
    assert "Automatic choice: recipes" in (run / "report.md").read_text()

    loaded = ttf.load(run)
    size = record["chosen"]["image_size"]
    splits = ttf.data.from_directory(shades, image_size=size, test_split=0.25, verbose=False)
    assert loaded.image_size == (size, size)
    exported = ttf.export(run, tmp_path / "export", precisions=["float32"], formats=["tflite"], data=splits,
                          latency_repeats=1, verbose=0)
    assert exported.parity[-1]["agreement"] == 1.0

    assert cli.main(["auto", str(shades), "--out", str(run), "--budget", "25s"]) == 1
    assert "already holds a trained run" in capsys.readouterr().err


def test_auto_refuses_bad_settings_before_any_work(shades, tmp_path, capsys):
    from transfer_tf import cli

    with pytest.raises(SystemExit):
        cli.main(["auto", str(shades), "--budget", "soon"])
    assert "A budget is a duration such as 300, 90s, 10m or 1h30m. Received: budget='soon'" in \
        capsys.readouterr().err
    with pytest.raises(ValueError, match="auto chooses on validation images.*Received: validation_split=0"):
        ttf.auto(shades, tmp_path / "none", budget=60, candidates=[("efficientnet_lite0", 32)],
                 validation_split=0.0, verbose=False)
    with pytest.raises(ValueError, match="no_such_net"):
        ttf.auto(shades, tmp_path / "none", candidates=[("no_such_net", 32)])
    with pytest.raises(ValueError, match="at least 32 px. Received: image_size=16"):
        ttf.auto(shades, tmp_path / "none", candidates=[("efficientnet_lite0", 16)])


@pytest.mark.parametrize("probe, says", [(0.8, "the 5-fold linear probe is shown beside it"),
                                         (None, "no linear probe ran")])
def test_the_bases_table_says_whether_a_linear_probe_ran(probe, says):
    trial = {"recipe": "top1", "backbone": "efficientnet_lite0", "image_size": 128, "validation_accuracy": 1.0,
             "validation_loss": 0.01, "estimated_seconds": 4.0, "seconds": 6.0, "note": ""}
    record = {"chosen": trial, "trials": [trial], "seconds": 41.0, "budget_seconds": 60.0, "finished": True,
              "bases": [{"backbone": "efficientnet_lite0", "image_size": 128, "logme": -0.9, "linear_probe": probe,
                         "seconds": 0.8, "note": ""}]}
    (_, _, rows, note), _ = auto_tables(record)
    assert rows[0][3] == ("-" if probe is None else "80.0%")
    assert says in note
