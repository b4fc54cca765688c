"""Plots, the run report and `transfer-tf compare`, end to end on tiny data."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from transfer_tf import cli

from transfer_tf.evaluation import plots
from transfer_tf.evaluation.predictions import Predictions
from transfer_tf.evaluation.metrics import classification_metrics
from transfer_tf.evaluation.report import REPORT_FILE, write_report
from transfer_tf.model.records import FineTuneResult, PhaseResult

from image_files import write_bad, write_class_folder

TINY = ["--backbone", "vgg16", "--weights", "none", "--image-size", "32",
        "--head-epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8"]


def record(head_epochs=2, tune_epochs=2):
    n = head_epochs + tune_epochs
    phases = [
        PhaseResult("head", 0, head_epochs, 1e-3, 1.0, [], 10, {}),
        PhaseResult("fine_tune", head_epochs, tune_epochs, 1e-5, 2.0, ["block5"], 100, {}),
    ]
    history = {"loss": list(np.linspace(1, 0.2, n)), "accuracy": list(np.linspace(0.4, 0.9, n)),
               "val_loss": list(np.linspace(1.1, 0.4, n)), "val_accuracy": [None] * n}
    return FineTuneResult(history, phases, head_epochs, {})


def png(path):
    """The PNG's pixel size, and whether it shows more than one colour."""
    image = np.asarray(Image.open(path).convert("RGB"))
    return (image.shape[1], image.shape[0]), image.reshape(-1, 3).std(axis=0).max() > 0


def test_each_plot_is_a_png_of_its_stated_pixel_size(tmp_path):
    metrics = classification_metrics([0, 1, 2, 2], np.eye(3)[[0, 1, 2, 0]], ["a", "b", "c"])
    rng = np.random.default_rng(0)
    mistakes = [(3, rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))] * 5
    predictions = Predictions(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 0]], mistakes)
    expected = {
        "history.png": (plots.plot_history(record(), path=tmp_path / "history.png"), (1000, 400)),
        "matrix.png": (plots.plot_confusion_matrix(metrics, path=tmp_path / "matrix.png"), (500, 500)),
        "counts.png": (plots.plot_class_distribution(
            {"train": [5, 3, 1], "validation": [1, 1, 0], "test": [0, 0, 0]}, ["a", "b", "c"],
            path=tmp_path / "counts.png"), (800, 400)),
        "mistakes.png": (plots.plot_mistakes(
            predictions, ["a", "b", "c"], names=["x/1.png"] * 4, path=tmp_path / "mistakes.png"),
            (1000, 540)),  # five images: two rows of four
        "curves.png": (plots.plot_validation_curves(
            {"one": [0.2, 0.5], "two": [0.3, None]}, boundaries={"one": 1},
            path=tmp_path / "curves.png"), (800, 450)),
    }
    for name, (figure, size) in expected.items():
        assert tuple(figure.get_size_inches() * plots.DPI) == pytest.approx(size)
        assert png(tmp_path / name) == (size, True), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)  # no partial files


def test_history_plot_marks_the_phase_change_only_when_both_phases_ran():
    def boundary_lines(figure):
        return [l for l in figure.axes[0].get_lines() if l.get_label() == "fine-tuning starts"]

    assert len(boundary_lines(plots.plot_history(record()))) == 1
    assert boundary_lines(plots.plot_history(record(tune_epochs=0))) == []
    line = boundary_lines(plots.plot_history(record(head_epochs=3)))[0]
    assert line.get_xdata()[0] == pytest.approx(3.5)  # between epochs 3 and 4


def test_confusion_matrix_refuses_multilabel_metrics():
    metrics = classification_metrics([[1, 0], [0, 1]], [[.9, .1], [.2, .8]], ["x", "y"],
                                     task="multilabel")
    with pytest.raises(ValueError, match="one label per image"):
        plots.plot_confusion_matrix(metrics)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "tones"
    write_class_folder(root, ["dark", "mid", "light"], per_class=10, value_of=lambda l: 30 + 95 * l)
    write_bad(root / "mid" / "broken.png", "garbage.png")
    return root


def links(report):
    return re.findall(r"\]\(([^)]+)\)", report.read_text())


def test_train_writes_plots_metrics_and_a_report_linking_only_existing_files(folder, tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", str(folder), *TINY, "--test-split", "0.2", "--out", str(run),
                     "--quiet"]) == 0
    report = run / REPORT_FILE
    targets = links(report)
    assert {f"plots/{n}" for n in ("history.png", "class_distribution.png",
                                   "confusion_matrix.png", "misclassified.png")} <= set(targets)
    assert all((run / t).is_file() for t in targets)
    text = report.read_text()
    for expected in ("vgg16", "| dtype policy | float32 |", "| dark | ", "broken.png", "| head | 1 |",
                     "| fine_tune | 1 |", "### Validation", "### Test", "Confusion matrix"):
        assert expected in text, expected
    metrics = json.loads((run / "metrics.json").read_text())
    counts = json.loads((run / "data.json").read_text())["counts"]
    assert metrics["split"] == "test" and metrics["num_images"] == sum(counts["test"])
    assert png(run / "plots" / "history.png") == ((1000, 400), True)

    # Without data the report has no metrics and links no plot it did not make.
    for plot in (run / "plots").iterdir():
        plot.unlink()
    (run / "metrics.json").unlink()
    write_report(run, None, verbose=False)
    targets = links(report)
    assert "Not computed" in report.read_text() and "plots/history.png" in targets
    assert all((run / t).is_file() for t in targets)
    assert "plots/confusion_matrix.png" not in targets and "metrics.json" not in targets


def test_compare_trains_three_ways_on_one_split_and_writes_table_json_plot(folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(folder), *TINY, "--out", str(out), "--quiet"]) == 0
    table = capsys.readouterr().out
    result = json.loads((out / "compare.json").read_text())
    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["classical", "feature_extraction", "fine_tuning", "from_scratch"]
    assert rows["classical"]["epochs"] == 0 and "logistic" in rows["classical"]["description"]
    trained = {m: row for m, row in rows.items() if m != "classical"}
    assert all(row["epochs"] == 2 and row["method"] in table for row in trained.values())
    assert all(0 <= row["final_val_accuracy"] <= row["best_val_accuracy"] <= 1 for row in rows.values())
    params = [trained[m]["trainable_params"] for m in trained]
    assert params[0] < params[1] < params[2]  # head < head + top block < everything
    assert result["boundaries"] == {"classical": None, "feature_extraction": None, "fine_tuning": 1,
                                    "from_scratch": None}
    assert list(result["curves"]) == list(trained)
    assert all(len(curve) == 2 for curve in result["curves"].values())
    assert png(out / "compare.png") == ((800, 450), True)
    assert "compare.png" in links(out / "compare.md")
    assert cli.main(["compare", str(folder), *TINY, "--out", str(out), "--quiet"]) == 1
    assert "already holds a comparison" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--validation-split", "0"], "hold no validation images"),
    (["--backbone", "resnet9000"], "Received: backbone='resnet9000'"),
    (["--head-epochs", "0", "--fine-tune-epochs", "0"], "at least one epoch"),
])
def test_compare_rejects_bad_settings_before_training(folder, tmp_path, capsys, extra, message):
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(folder), *TINY, *extra, "--out", str(out), "--quiet"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and message in errors[0]
    assert not out.exists()
