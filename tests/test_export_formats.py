"""ONNX and OpenVINO beside TFLite, each run in its own runtime; held-out numbers per format; bench."""

import importlib.util
import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.exporting import bundle, file_checks, formats
from transfer_tf.exporting.bench import count_multiply_adds
from transfer_tf.exporting.runtimes import runner

from conftest import separable_data
from image_files import write_class_folder

CLASSES = ["dark", "mid", "light"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A trained run folder (three classes told apart by brightness) and its export with every format.

    VGG16, the quickest base to build and convert; test_export.py runs a MobileNetV3Small through
    both runtimes."""
    root = tmp_path_factory.mktemp("formats")
    rng = np.random.default_rng(0)
    write_class_folder(root / "data", CLASSES, per_class=12,
                       value_of=lambda label: int(30 + 90 * label + rng.integers(-15, 15)))
    run = root / "run"
    assert cli.main(["train", str(root / "data"), "--backbone", "vgg16", "--weights", "none",
                     "--image-size", "32", "--head-epochs", "2", "--fine-tune-epochs", "0",
                     "--validation-split", "0.25", "--seed", "0", "--out", str(run), "--quiet"]) == 0
    assert cli.main(["export", str(run), "--precision", "float32", "int8", "--latency-repeats", "3",
                     "--quiet"]) == 0
    return run


def _rows(run):
    return {row["artefact"]: row for row in json.loads((run / "export" / "report.json").read_text())["rows"]}


def test_onnx_and_openvino_are_written_and_agree_with_keras_in_their_own_runtimes(run_folder):
    export = run_folder / "export"
    assert (export / "model.onnx").is_file()
    assert (export / "openvino" / "model.xml").is_file() and (export / "openvino" / "model.bin").is_file()
    rows = _rows(run_folder)
    for name in ("onnx", "openvino"):
        assert rows[name]["max_abs_diff"] <= 1e-4 and rows[name]["agreement"] == 1.0
    # Opened again from disk, as a server team would, on images of their own.
    images = np.random.default_rng(1).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    reference = ttf.load(run_folder).predict(images, verbose=0)
    for path in (export / "model.onnx", export / "openvino"):
        np.testing.assert_allclose(runner(path)(images), reference, atol=1e-4, err_msg=str(path))
        np.testing.assert_allclose(runner(path, threads=1)(images), reference, atol=1e-4, err_msg=str(path))


def test_report_holds_held_out_numbers_per_format_and_the_machine(run_folder):
    report = json.loads((run_folder / "export" / "report.json").read_text())
    assert report["machine"]["cpu"]["cores"] >= 1 and "vector_flags" in report["machine"]["cpu"]
    assert report["held_out"]["split"] == "validation" and report["held_out"]["images"] >= 3
    rows = {row["artefact"]: row for row in report["rows"]}
    assert list(rows) == ["keras", "saved_model", "float32", "int8", "onnx", "openvino"]
    for name, row in rows.items():
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["balanced_accuracy"] <= 1.0
        assert row["latency_p90_ms"] >= row["latency_ms"] > 0
        # one core where the runtime takes a thread count; TensorFlow's pools are fixed at start-up
        assert (row["latency_1_thread_ms"] is None) == (name in ("keras", "saved_model"))
        assert row["failing"] is None  # no --max-accuracy-drop
    assert [line.split()[0] for line in
            ttf.ExportResult(None, {}, report["rows"], {}).parity_table().splitlines()[1:]] == list(rows)


def test_onnx_and_openvino_are_converted_from_the_graph_the_keras_check_traced(monkeypatch, tmp_path):
    """One trace of the classifier for the Keras row and both conversions (7 with Keras's exporters)."""
    clf = ttf.ImageClassifier.from_backbone("vgg16", class_names=["a", "b"], image_size=32, weights=None)
    traced = []
    call, build = clf.call, bundle.serving_model
    monkeypatch.setattr(clf, "call", lambda *args, **kwargs: traced.append(not tf.executing_eagerly())
                        or call(*args, **kwargs))

    def serving_model(classifier):  # built symbolically (one call); the traces come after
        model = build(classifier)
        traced.clear()
        return model

    monkeypatch.setattr(bundle, "serving_model", serving_model)
    images, labels = separable_data(8, 32, 2)
    data = ttf.data.from_arrays(images, labels, ["a", "b"], image_size=32, validation_split=0.5)
    result = ttf.export(clf, tmp_path / "export", formats=["onnx", "openvino"], precisions=[], data=data,
                        latency_repeats=1, verbose=0)
    assert [row["artefact"] for row in result.parity] == ["keras", "onnx", "openvino"]
    assert all(row["agreement"] == 1.0 for row in result.parity)
    assert traced.count(True) == 1


def test_a_format_that_loses_too_much_accuracy_fails_the_command(run_folder, monkeypatch, capsys):
    original = file_checks._parity_row

    def int8_loses_half(artefact, *args):
        row, scores = original(artefact, *args)
        if artefact.name == "int8":
            row = {**row, "accuracy": row["accuracy"] - 0.5}
        return row, scores

    monkeypatch.setattr(file_checks, "_parity_row", int8_loses_half)
    out = run_folder.parent / "failing-export"
    status = cli.main(["export", str(run_folder), "--out", str(out), "--formats", "tflite", "--precision",
                       "float32", "int8", "--max-accuracy-drop", "1", "--latency-repeats", "1", "--quiet"])
    error = capsys.readouterr().err
    assert status == 1
    assert "model_int8.tflite (50.0 points)" in error and "Ship model_float32.tflite instead" in error
    rows = {row["artefact"]: row for row in json.loads((out / "report.json").read_text())["rows"]}
    assert rows["int8"]["failing"] is True and rows["float32"]["failing"] is False
    assert not (out / "saved_model").exists() and not (out / "model.onnx").exists()  # tflite only


def test_a_requested_format_whose_packages_are_missing_is_an_error(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs openvino.*pip install 'transfer_tf\[openvino\]'"):
        formats.choose_formats(["tflite", "openvino"])
    chosen, skipped = formats.choose_formats(None)
    assert "openvino" not in chosen and "onnx" in chosen
    assert skipped == ["openvino: skipped, openvino not installed (pip install 'transfer_tf[openvino]')"]
    assert formats.choose_formats(["savedmodel", "onnx"]) == (("saved_model", "onnx"), [])
    with pytest.raises(ValueError, match=r"Received: formats=\['coreml'\]"):
        formats.choose_formats(["coreml"])
    assert cli.main(["export", "no-such-run", "--formats", "openvino"]) == 1
    assert "pip install 'transfer_tf[openvino]'" in capsys.readouterr().err


def test_precisions_without_tflite_among_the_formats_are_refused(tmp_path):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    with pytest.raises(ValueError, match=r"add 'tflite' to formats. Received: precisions=\['int8'\]"):
        ttf.export(clf, tmp_path / "out", formats=["onnx"], precisions=["int8"])
    assert not (tmp_path / "out").exists()


def test_bench_times_every_file_against_the_floor(run_folder, capsys):
    assert cli.main(["bench", str(run_folder), "--repeats", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    files = [row["file"] for row in result["rows"]]
    assert files == ["model.keras", "saved_model", "model_float32.tflite", "model_int8.tflite", "model.onnx",
                     "openvino/model.xml"]
    assert result["multiply_adds"] == count_multiply_adds(ttf.load(run_folder)) > 0
    assert result["peak_gmacs"] > 0 and result["floor_ms"] > 0
    for row in result["rows"]:
        assert row["floor_ratio"] == pytest.approx(row["latency_ms"] / result["floor_ms"])
    # A run folder not exported yet is refused, not timed as if its model.keras were an export.
    bare = run_folder.parent / "bare-run"
    bare.mkdir()
    (bare / "model.keras").write_bytes((run_folder / "model.keras").read_bytes())
    assert cli.main(["bench", str(bare)]) == 1
    assert "transfer-tf export RUN" in capsys.readouterr().err


def test_multiply_adds_are_counted_per_layer():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)           # 8*8 positions * 4 filters * 3*3*3
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)         # 8*8 * 4 channels * 3*3
    base = keras.Model(inputs, x)
    pooled = keras.Input((4,))
    head = keras.Model(pooled, keras.layers.Dense(2)(pooled))      # 4*2
    assert count_multiply_adds(SimpleNamespace(base=base, head=head)) == 8 * 8 * 4 * 27 + 8 * 8 * 4 * 9 + 8
