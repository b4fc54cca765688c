"""`transfer-tf`: train -> evaluate -> predict end to end, config files, clean errors."""

import csv
import json
import subprocess
import sys

import pytest
from browser import assert_renders, needs_chromium
from image_files import write_bad, write_class_folder

from transfer_tf import cli, load

TINY = ["--backbone", "vgg16", "--weights", "none", "--image-size", "32",
        "--head-epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "shapes"
    write_class_folder(root, ["dark", "light"], per_class=10, value_of=lambda label: 30 + 190 * label)
    write_bad(root / "light" / "broken.jpg", "text.jpg")
    return root


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "shapes"
    assert cli.main(["train", str(folder), *TINY, "--out", str(out), "--quiet"]) == 0
    return out


def test_train_writes_a_run_folder_and_summary(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", str(folder), *TINY, "--out", str(out), "--validation-split", "0.4",
                     "--calibrate", "--known-kept", "0.5"]) == 0
    printed = capsys.readouterr().out
    for expected in ("dark", "Skipped 1 unreadable file(s)", "broken.jpg", "head", "fine_tune",
                     "best validation accuracy", "Calibrated on", "'unknown' below a top class probability of",
                     f"Saved the run to {out}"):
        assert expected in printed
    names = {p.name for p in out.iterdir()}
    assert {"model.keras", "labels.txt", "config.json", "history.json", "data.json", "calibration.json"} <= names
    summary = json.loads((out / "data.json").read_text())
    assert sum(summary["counts"]["train"]) + sum(summary["counts"]["validation"]) == 20
    assert len(summary["skipped"]) == 1
    classifier = load(out)
    assert classifier.class_names == ["dark", "light"]
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["num_images"] == sum(summary["counts"]["validation"])
    assert classifier.temperature == calibration["temperature"]
    assert classifier.unknown_threshold == calibration["unknown_threshold"] and 0.5 <= calibration["kept"] < 1
    assert "Calibration (validation images)" in (out / "report.md").read_text()
    assert "plots/reliability.png" in (out / "report.md").read_text()

    # predict answers "unknown" exactly for the images below the threshold, and gives the best guesses after it.
    assert cli.main(["predict", str(out), str(folder), "--json", "--no-unknown"]) == 0
    plain = json.loads(capsys.readouterr().out)
    below = [p["path"] for p in plain if p["top"][0]["score"] < classifier.unknown_threshold]
    assert not any(p["unknown"] for p in plain) and below
    assert cli.main(["predict", str(out), str(folder), "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[:len(plain)]
    unknown = [line.split(": unknown (best guesses: ")[0] for line in lines if ": unknown (best guesses: " in line]
    assert unknown == below


def test_train_refuses_calibration_it_cannot_do(folder, tmp_path, capsys):
    assert cli.main(["train", str(folder), *TINY, "--out", str(tmp_path / "a"), "--head", "logistic",
                     "--calibrate"]) == 1
    assert "Received: head='logistic'" in capsys.readouterr().err
    assert cli.main(["train", str(folder), *TINY, "--out", str(tmp_path / "b"), "--validation-split", "0",
                     "--calibrate"]) == 1
    assert "--calibrate fits on validation images" in capsys.readouterr().err
    assert cli.main(["train", str(folder), *TINY, "--out", str(tmp_path / "c"), "--known-kept", "0.9"]) == 1
    assert "add --calibrate. Received: --known-kept 0.9" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_train_refuses_to_replace_a_run(folder, run, capsys):
    assert cli.main(["train", str(folder), *TINY, "--out", str(run)]) == 1
    assert "already holds a trained run" in capsys.readouterr().err


def test_evaluate_prints_and_writes_metrics(folder, run, capsys):
    assert cli.main(["evaluate", str(run), str(folder), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "20 images: accuracy" in printed and "balanced accuracy" in printed
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == 20 and 0 <= metrics["accuracy"] <= 1
    assert sum(map(sum, metrics["confusion_matrix"])) == 20
    assert cli.main(["evaluate", str(run), str(folder), "--split", "validation", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    recorded = json.loads((run / "data.json").read_text())["counts"]["validation"]
    assert printed["split"] == "validation" and printed["num_images"] == sum(recorded)
    assert json.loads((run / "metrics.json").read_text()) == printed


def test_interpret_names_the_mistakes_and_writes_table_and_plots(folder, run, tmp_path, capsys):
    out = tmp_path / "why"
    assert cli.main(["interpret", str(run), str(folder), "--out", str(out), "--top-losses", "4"]) == 0
    printed = capsys.readouterr().out
    assert "of 20 images right" in printed and str(out / "top_losses.png") in printed
    rows = list(csv.DictReader((out / "interpretation.csv").open()))
    assert len(rows) == 20 and {r["image"].split("/")[0] for r in rows} == {"dark", "light"}
    assert [float(r["loss"]) for r in rows] == sorted((float(r["loss"]) for r in rows), reverse=True)
    for name in ("most_confused.json", "top_losses.png", "most_confused.png"):
        assert (out / name).stat().st_size > 0


def test_a_trained_run_reports_its_top_losses_and_confusions(run):
    report = (run / "report.md").read_text()
    assert "interpretation/top_losses.png" in report and "interpretation/most_confused.png" in report
    assert (run / "interpretation" / "interpretation.csv").is_file()


def test_the_html_report_is_self_contained_and_its_matrix_opens_its_images(run):
    page = (run / "report.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'src="plots/' not in page and page.count('src="data:image/') >= 5
    rows = list(csv.DictReader((run / "interpretation" / "interpretation.csv").open()))
    classes = ["dark", "light"]
    for true in range(2):
        for predicted in range(2):
            count = sum(r["true"] == classes[true] and r["predicted"] == classes[predicted] for r in rows)
            assert (f'href="#cell-{true}-{predicted}">{count}<' in page) == (count > 0)
            assert (f'id="cell-{true}-{predicted}"' in page) == (count > 0)


@needs_chromium
def test_the_html_report_renders_in_a_browser(run):
    rendered = assert_renders(run / "report.html")
    assert len(rendered.images) >= 5


def test_predict_ranks_labels(folder, run, capsys):
    assert cli.main(["predict", str(run), str(folder / "dark" / "img_000.png"),
                     str(folder / "light"), "--top-k", "2", "--json"]) == 0
    captured = capsys.readouterr()
    predictions = json.loads(captured.out)
    assert len(predictions) == 11  # one file plus the ten readable images of the folder
    for item in predictions:
        scores = [t["score"] for t in item["top"]]
        assert sorted(scores, reverse=True) == scores and sum(scores) == pytest.approx(1, abs=1e-5)
        assert {t["label"] for t in item["top"]} == {"dark", "light"}
    assert "broken.jpg" in captured.err
    assert cli.main(["predict", str(run), str(folder / "dark"), "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 10 and all(": dark " in l or ": light " in l for l in lines)


def test_config_file_with_flags_overriding(folder, tmp_path, capsys):
    config = tmp_path / "settings.yaml"
    config.write_text(
        f"data_dir: {folder}\nbackbone: vgg16\nweights: none\nimage-size: 32\n"
        "head_epochs: 1\nfine_tune_epochs: 3\nbatch_size: 8\n"
    )
    out = tmp_path / "from-config"
    assert cli.main(["train", "--config", str(config), "--fine-tune-epochs", "1",
                     "--out", str(out), "--quiet"]) == 0
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["head_epochs"] == 1 and training["fine_tune_epochs"] == 1
    toml = tmp_path / "settings.toml"
    toml.write_text('backbone = "vgg16"\nlearning_rate = 0.1\n')
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", str(folder), "--config", str(toml)])
    assert exit_info.value.code == 2
    assert "unknown setting 'learning_rate'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "MISSING", "--backbone", "vgg16"], "does not exist"),
        (["train", "FOLDER", "--backbone", "resnet9000"], "Received: backbone='resnet9000'"),
        (["train", "FOLDER", "--backbone", "vgg16", "--image-size", "8"], "Received: image_size=8"),
        (["predict", "MISSING", "FOLDER"], "No transfer_tf run folder"),
    ],
)
def test_errors_are_one_line_without_traceback(folder, tmp_path, capsys, args, message):
    args = [str(folder) if a == "FOLDER" else str(tmp_path / "nope") if a == "MISSING" else a
            for a in args]
    assert cli.main(args) == 1
    stderr = capsys.readouterr().err
    errors = [l for l in stderr.splitlines() if l.startswith("transfer-tf: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in stderr


def test_the_command_in_a_fresh_process_prints_the_error_line_alone(folder, tmp_path):
    # What a shell user sees, TensorFlow's own start-up logging included.
    done = subprocess.run(
        [sys.executable, "-m", "transfer_tf.cli", "train", str(folder), "--backbone", "resnet9000"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert done.returncode == 1
    errors = [l for l in done.stderr.splitlines() if l.startswith("transfer-tf: error:")]
    assert len(errors) == 1 and "Received: backbone='resnet9000'" in errors[0]
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(FileNotFoundError):
        cli.main(["train", str(tmp_path / "nope"), "--debug"])


def test_backbones_lists_the_registry(capsys):
    assert cli.main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"vgg16", "resnet50", "mobilenetv3small"} <= {r["name"] for r in rows}


def test_train_with_a_feature_cache_folder_reuses_it_and_trains_alike(folder, tmp_path, capsys):
    cache = tmp_path / "features"
    for name in ("first", "second"):
        assert cli.main(["train", str(folder), *TINY, "--feature-cache", str(cache),
                         "--out", str(tmp_path / name)]) == 0
    printed = capsys.readouterr().out
    assert "Feature cache: running the frozen base once" in printed and "reusing" in printed
    assert any(cache.iterdir())
    first, second = (json.loads((tmp_path / n / "history.json").read_text())["history"] for n in ("first", "second"))
    assert first == second


@pytest.mark.slow  # three trainings in emulated bfloat16 on AVX2 CPUs; each part has a quick test of its own
def test_compare_under_a_strategy_in_bfloat16(folder, tmp_path, capsys):
    out = tmp_path / "compare"
    assert cli.main(["compare", str(folder), *TINY, "--strategy", "mirrored", "--dtype", "mixed_bfloat16",
                     "--classical", "none", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["dtype"] == "mixed_bfloat16" and len(result["rows"]) == 3
    assert (out / "compare.json").is_file()


def test_pretrain_masked_images_on_a_folder(folder, tmp_path, capsys):
    out = tmp_path / "pretrained"
    assert cli.main(["pretrain", str(folder), "--method", "masked", "--backbone", "vgg16", "--image-size", "32",
                     "--epochs", "1", "--batch-size", "8", "--out", str(out), "--quiet"]) == 0
    assert f"--weights {out}" in capsys.readouterr().out
