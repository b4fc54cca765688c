"""Settings declared once: checked in Python, generated as CLI options, recorded in run folders."""

import argparse
import dataclasses
import inspect
import json

import pytest

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.cli.config_file import subparsers_of
from transfer_tf.core.settings_base import Settings, add_arguments, fill, setting
from transfer_tf.core.staging import staged_folder

from image_files import write_class_folder

GROUPS = (ttf.ModelSettings, ttf.DataSettings, ttf.FineTuneSettings)


def _subparser(name):
    return subparsers_of(cli.build_parser())[name]


@pytest.mark.parametrize("command", ["train", "compare"])
def test_every_offered_setting_is_an_option_with_the_dataclass_default(command):
    actions = {a.dest: a for a in _subparser(command)._actions}
    for cls in GROUPS:
        for field in dataclasses.fields(cls):
            if not field.metadata["cli"]:
                assert field.name not in actions or field.name in ("batch_size", "seed")
                continue
            action = actions[field.name]
            assert action.default == field.default, field.name
            assert (field.metadata["flag"] or "--" + field.name.replace("_", "-")) in action.option_strings


def test_a_new_setting_is_written_once():
    @dataclasses.dataclass(frozen=True)
    class Extra(Settings):
        warmup_epochs: int = setting(0, "epochs of learning-rate warm-up")
        schedule: str = setting("constant", "learning-rate schedule", choices=("constant", "cosine"))

    parser = argparse.ArgumentParser()
    add_arguments(parser, Extra)
    args = parser.parse_args(["--warmup-epochs", "3", "--schedule", "cosine"])
    assert Extra.from_args(args) == Extra(warmup_epochs=3, schedule="cosine")
    assert Extra.from_args(parser.parse_args([])) == Extra()
    assert "(default: constant)" in parser.format_help()


@pytest.mark.parametrize("kwargs, message", [
    (dict(head_epochs=-1), "head_epochs must be an int >= 0. Received: head_epochs=-1"),
    (dict(head_epochs=True), "Received: head_epochs=True"),
    (dict(head_lr=0), "head_lr must be a number > 0. Received: head_lr=0"),
    (dict(fine_tune_lr="fast"), "Received: fine_tune_lr='fast'"),
    (dict(label_smoothing=1.0), r"label_smoothing must be in \[0, 1\)"),
    (dict(feature_cache="disk"), "Received: feature_cache='disk'"),
    (dict(class_weight=[1, 2]), "must be a dict, 'balanced' or None"),
    (dict(early_stopping_patience=-2), "early_stopping_patience must be an int >= 0 or None"),
])
def test_fine_tune_settings_refuse_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ttf.FineTuneSettings(**kwargs)


def test_keywords_fill_the_settings_and_unknown_ones_are_refused():
    settings = fill({"model": ttf.ModelSettings, "data": ttf.DataSettings, "training": ttf.FineTuneSettings},
                    {"backbone": "vgg16", "batch_size": 8, "head_epochs": 2},
                    {"training": ttf.FineTuneSettings(head_lr=1e-2)}, caller="f")
    assert settings["model"].backbone == "vgg16" and settings["data"].batch_size == 8
    assert settings["training"].head_epochs == 2 and settings["training"].head_lr == 1e-2
    with pytest.raises(TypeError, match=r"f\(\) got unexpected keyword argument\(s\) head_epoch\b"):
        fill({"training": ttf.FineTuneSettings}, {"head_epoch": 2}, caller="f")
    with pytest.raises(TypeError, match="fine_tune"):
        ttf.fine_tune(None, None, learning_rate=1e-3)


def test_the_trainers_show_their_settings_as_keywords():
    parameters = inspect.signature(ttf.fine_tune).parameters
    for name in ttf.FineTuneSettings.field_names():
        assert parameters[name].default == getattr(ttf.FineTuneSettings(), name)
    assert inspect.signature(ttf.train_from_scratch).parameters["bn_momentum"].default == 0.9
    assert inspect.signature(ttf.compare).parameters["backbone"].default == "efficientnet_lite0"


def test_fine_tune_lr_defaults_to_a_hundredth_and_is_recorded_resolved():
    settings = ttf.FineTuneSettings(head_lr=2e-3)
    assert settings.fine_tune_learning_rate == pytest.approx(2e-5)
    assert settings.to_dict()["fine_tune_lr"] == pytest.approx(2e-5)
    assert settings.replace(head_lr=1e-2).fine_tune_learning_rate == pytest.approx(1e-4)


def test_the_run_folder_records_the_settings_the_cli_gave(tmp_path):
    data = tmp_path / "shapes"
    write_class_folder(data, ["dark", "light"], per_class=6)
    out = tmp_path / "run"
    assert cli.main(["train", str(data), "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
                     "--head-epochs", "1", "--fine-tune-epochs", "0", "--batch-size", "4",
                     "--label-smoothing", "0.1", "--class-weight", "balanced", "--seed", "3",
                     "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    expected = ttf.FineTuneSettings(head_epochs=1, fine_tune_epochs=0, label_smoothing=0.1,
                                    class_weight="balanced", seed=3).to_dict()
    assert config["training"] == expected
    assert config["machine"]["cpu"]["cores"] >= 1 and "onednn_enabled" in config["machine"]


def test_a_failed_staged_write_leaves_the_folder_as_it_was(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "keep.txt").write_text("new")
            raise RuntimeError("half way")
    assert (target / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left


def test_a_staged_write_moves_its_files_in_marker_last_and_drops_stale_ones(tmp_path, monkeypatch):
    import transfer_tf.core.staging as staging_module

    target = tmp_path / "run"
    target.mkdir()
    (target / "history.json").write_text("stale")
    (target / "report.md").write_text("kept")
    moved = []
    replace = staging_module.os.replace
    monkeypatch.setattr(staging_module.os, "replace",
                        lambda src, dst: (moved.append(dst.name), replace(src, dst)))
    with staged_folder(target, last="config.json", remove=("history.json",)) as staging:
        for name in ("config.json", "model.keras", "labels.txt"):
            (staging / name).write_text(name)
    assert moved[-1] == "config.json" and sorted(moved) == ["config.json", "labels.txt", "model.keras"]
    for name in moved:
        assert (target / name).read_text() == name
    assert not (target / "history.json").exists() and (target / "report.md").read_text() == "kept"


def test_replace_whole_swaps_the_folder_only_when_complete(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.tflite").write_text("old")
    with staged_folder(target, replace_whole=True) as staging:
        (staging / "new.tflite").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.tflite"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
