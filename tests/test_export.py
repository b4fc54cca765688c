"""Export: SavedModel without transfer_tf, TFLite in LiteRT and MediaPipe, clean failures."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.core import integrity
from transfer_tf.exporting.metadata import read_labels
from transfer_tf.exporting.parity import tflite_scores
from transfer_tf.exporting.saved_model import serving_model
from transfer_tf.exporting.tflite import operators

from conftest import separable_data, weight_groups
from image_files import write_class_folder

CLASSES = ["dark", "mid", "light"]
SIZE = 32
INT8_IO = ttf.TFLiteConfig.int8(num_calibration_images=64, integer_io=True)
PRECISIONS = ["float32", "float16", "dynamic_range", "int8", INT8_IO]
# Max abs difference of the probabilities from Keras's, per artefact.
TOLERANCE = {"saved_model": 1e-5, "float32": 1e-4, "float16": 1e-2, "dynamic_range": 5e-2,
             "int8": 0.1, "int8_uint8_io": 0.1}


@pytest.fixture(scope="module")
def data():
    images, labels = separable_data(240, SIZE, len(CLASSES))
    return ttf.data.from_arrays(images, labels, CLASSES, image_size=SIZE, validation_split=0.25,
                                batch_size=32)


@pytest.fixture(scope="module")
def classifier(data):
    """A MobileNetV3Small trained from scratch, so its scores are decisive."""
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", class_names=CLASSES, image_size=SIZE,
                                            weights=None)
    ttf.train_from_scratch(clf, data.train, data.validation, epochs=20, verbose=0)
    return clf


@pytest.fixture(scope="module")
def exported(classifier, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "bundle"
    result = ttf.export(classifier, out, precisions=PRECISIONS, data=data, latency_repeats=3,
                        verbose=0)
    return result


@pytest.fixture(scope="module")
def held_out(data):
    images, labels = zip(*data.validation.as_numpy_iterator())
    return np.concatenate(images), np.concatenate(labels)


def test_bundle_holds_every_artefact_and_its_record(exported, classifier):
    out = exported.directory
    names = {p.name for p in out.iterdir()}
    assert names == {
        "model.keras", "saved_model", "labels.txt", "model_card.json", "parity.json", "SHA256SUMS",
        "model_float32.tflite", "model_float16.tflite", "model_dynamic_range.tflite",
        "model_int8.tflite", "model_int8_uint8_io.tflite", "model.onnx", "openvino", "report.json",
    }
    assert (out / "labels.txt").read_text().splitlines() == CLASSES
    listed = {line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()}
    assert listed == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    integrity.verify_checksums(out)
    card = json.loads((out / "model_card.json").read_text())
    assert card["labels"] == CLASSES and card["backbone"] == "mobilenetv3small"
    assert card["input"]["shape"] == [1, SIZE, SIZE, 3] and card["input"]["value_range"] == [0, 255]
    assert [q["artefact"] for q in card["quantization"]] == [
        "float32", "float16", "dynamic_range", "int8", "int8_uint8_io",
    ]
    parity = json.loads((out / "parity.json").read_text())
    assert [r["artefact"] for r in parity["rows"]] == [
        "keras", "saved_model", "float32", "float16", "dynamic_range", "int8", "int8_uint8_io", "onnx", "openvino",
    ]
    for row in parity["rows"]:
        assert row["size_bytes"] == card["files"][row["file"]] > 0
        assert row["latency_ms"] > 0
    assert classifier.optimizer.built and "optimizer" not in weight_groups(out / "model.keras")
    reloaded = ttf.load(out / "model.keras")
    x = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), classifier.predict(x, verbose=0), atol=1e-6)
    # The SavedModel lists the model's variables, as Keras's `ExportArchive.track(model)` did.
    saved = tf.saved_model.load(str(out / "saved_model"))
    for kind in ("variables", "trainable_variables", "non_trainable_variables"):
        shapes = [sorted(tuple(v.shape) for v in getattr(model, kind)) for model in (saved, classifier)]
        assert shapes[0] == shapes[1] and shapes[0], kind


def test_int8_calibrates_on_training_images_as_many_as_configured(exported, data):
    counts = {q["artefact"]: q["calibration_images"] for q in exported.model_card["quantization"]}
    assert counts == {"float32": None, "float16": None, "dynamic_range": None,
                      "int8": min(300, sum(data.counts["train"])), "int8_uint8_io": 64}


def test_saved_model_runs_in_a_process_without_transfer_tf(exported, classifier, held_out, tmp_path):
    images = held_out[0][:16].round()
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(exported.directory / 'saved_model')!r})
        images = np.load({str(tmp_path / 'images.npy')!r})
        as_float = model.signatures["serving_default"](images=tf.constant(images))
        as_uint8 = model.signatures["serving_uint8"](images=tf.constant(images.astype(np.uint8)))
        np.save({str(tmp_path / 'float.npy')!r}, as_float["probabilities"].numpy())
        np.save({str(tmp_path / 'uint8.npy')!r}, as_uint8["probabilities"].numpy())
        print([s.decode() for s in model.signatures["labels"]()["labels"].numpy()])
        assert not any(name.startswith("transfer_tf") for name in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(CLASSES)
    expected = classifier.predict(images, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "float.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "uint8.npy"), expected, atol=1e-5)


@pytest.mark.parametrize("artefact", ["float32", "float16", "dynamic_range", "int8", "int8_uint8_io"])
def test_every_tflite_precision_runs_in_litert_within_tolerance(exported, classifier, held_out, artefact):
    model_bytes = exported.files[artefact].read_bytes()
    images, labels = held_out
    expected = classifier.predict(images, verbose=0)
    scores = tflite_scores(model_bytes, images)
    assert np.abs(scores - expected).max() <= TOLERANCE[artefact]
    agreement = np.mean(scores.argmax(-1) == expected.argmax(-1))
    assert agreement >= (1.0 if artefact == "float32" else 0.95)
    row = next(r for r in exported.parity if r["artefact"] == artefact)
    assert row["agreement"] == pytest.approx(agreement)
    assert row["accuracy"] == pytest.approx(np.mean(scores.argmax(-1) == labels))
    # The SavedModel's signature, kept: apps call it by name (LiteRT, Android's runSignature).
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["images"], "outputs": ["probabilities"]}}
    if artefact != "int8_uint8_io":
        by_name = interpreter.get_signature_runner("serving_default")(images=images[:1])["probabilities"]
        np.testing.assert_allclose(by_name, scores[:1], atol=1e-6)


def test_keras_model_is_decisive_enough_for_the_tolerances_to_mean_something(exported):
    keras_row = exported.parity[0]
    assert keras_row["accuracy"] >= 0.9


def test_no_flex_ops_and_the_declared_input_types(exported):
    from ai_edge_litert.interpreter import Interpreter

    for artefact in ("float32", "float16", "dynamic_range", "int8", "int8_uint8_io"):
        model_bytes = exported.files[artefact].read_bytes()
        ops = operators(model_bytes)
        assert ops and not [op for op in ops if not op.isupper()], ops  # built-ins only, no Flex
        detail = Interpreter(model_content=model_bytes).get_input_details()[0]
        assert detail["dtype"] == (np.uint8 if artefact == "int8_uint8_io" else np.float32)
        assert read_labels(model_bytes) == CLASSES
    int8_ops = operators(exported.files["int8"].read_bytes())
    assert "QUANTIZE" in int8_ops and "CONV_2D" in int8_ops


@pytest.fixture(scope="module")
def exported_lite0(data, tmp_path_factory):
    """EfficientNet-Lite0 with its ImageNet weights, the head trained, exported as apps get it."""
    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=CLASSES, image_size=SIZE)
    ttf.fine_tune(clf, data.train, head_epochs=3, fine_tune_epochs=0, head_lr=1e-2, verbose=0)
    out = tmp_path_factory.mktemp("export") / "lite0"
    return ttf.export(clf, out, precisions=["float32", INT8_IO], formats=["tflite"], data=data, latency_repeats=2,
                      verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("bundle, artefact", [
    ("exported", "float32"), ("exported", "int8_uint8_io"),
    ("exported_lite0", "float32"), ("exported_lite0", "int8_uint8_io"),
])
def test_mediapipe_image_classifier_returns_label_names(request, held_out, bundle, artefact):
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    exported = request.getfixturevalue(bundle)
    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(exported.files[artefact])), max_results=3,
    )
    images = held_out[0][:12].round()
    litert = tflite_scores(exported.files[artefact].read_bytes(), images)
    with vision.ImageClassifier.create_from_options(options) as mediapipe_classifier:
        for image, scores in zip(images, litert):
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image.astype(np.uint8)))
            categories = mediapipe_classifier.classify(frame).classifications[0].categories
            assert sorted(c.category_name for c in categories) == sorted(CLASSES)
            top = {CLASSES[i] for i in np.flatnonzero(scores == scores.max())}  # uint8 scores can tie
            assert categories[0].category_name in top


def test_binary_classifier_exports_one_score_per_label():
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", class_names=["no", "yes"],
                                            task="binary", image_size=SIZE, weights=None)
    x = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    p = clf.predict(x, verbose=0)
    scores = serving_model(clf).predict(x, verbose=0)
    np.testing.assert_allclose(scores, np.concatenate([1 - p, p], axis=-1), atol=1e-6)


@keras.saving.register_keras_serializable(package="transfer_tf_tests")
class InverseLayer(keras.layers.Layer):
    """Uses MatrixInverse, which LiteRT has only as a Flex (TensorFlow) op."""

    def call(self, x):
        corner = tf.transpose(x[:, :2, :2, :], [0, 3, 1, 2]) + 10.0 * tf.eye(2)
        return x + tf.reduce_sum(tf.linalg.inv(corner), axis=[2, 3])[:, None, None, :]


def _classifier_needing_flex_ops():
    inputs = keras.Input((SIZE, SIZE, 3))
    base = keras.Model(inputs, keras.layers.Conv2D(4, 3)(InverseLayer()(inputs)))
    head = ttf.build_head(base.output.shape[1:], 2)
    return ttf.ImageClassifier(base, head, class_names=["a", "b"])


def test_flex_ops_are_refused_by_name_and_leave_no_files(tmp_path):
    images, labels = separable_data(20, SIZE, 2)
    data = ttf.data.from_arrays(images, labels, ["a", "b"], image_size=SIZE, validation_split=0.5)
    out = tmp_path / "flex"
    with pytest.raises(ttf.FlexOpsRequiredError, match="MatrixInverse.*allow_flex_ops=True"):
        ttf.export(_classifier_needing_flex_ops(), out, precisions=["float32"], data=data, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_flex_ops_when_allowed_are_listed_and_marked_unchecked(tmp_path, capsys):
    images, labels = separable_data(20, SIZE, 2)
    data = ttf.data.from_arrays(images, labels, ["a", "b"], image_size=SIZE, validation_split=0.5)
    result = ttf.export(_classifier_needing_flex_ops(), tmp_path / "flex", precisions=["float32"],
                        formats=["saved_model", "tflite"], data=data, allow_flex_ops=True, latency_repeats=1)
    assert result.model_card["quantization"][0]["flex_ops"] == ["FlexMatrixInverse"]
    row = result.parity[-1]
    assert row["artefact"] == "float32" and row["agreement"] is None and row["size_bytes"] > 0
    printed = capsys.readouterr().out
    assert "uses Flex ops ['FlexMatrixInverse']" in printed and "not run: needs Flex ops" in printed


def test_an_onnx_file_that_cannot_run_is_skipped_with_a_reason_or_refused_when_asked_for(tmp_path, capsys):
    images, labels = separable_data(20, SIZE, 2)
    data = ttf.data.from_arrays(images, labels, ["a", "b"], image_size=SIZE, validation_split=0.5)
    needs_inverse = _classifier_needing_flex_ops()  # onnxruntime has no MatrixInverse kernel
    with pytest.raises(ValueError, match=r"onnx: not made.*MatrixInverse.*Received: formats=\['onnx'\]"):
        ttf.export(needs_inverse, tmp_path / "asked", formats=["onnx"], data=data, verbose=0)
    assert not (tmp_path / "asked").exists()
    result = ttf.export(needs_inverse, tmp_path / "default", formats=None, precisions=["float32"], data=data,
                        allow_flex_ops=True, latency_repeats=1, verbose=0)
    assert any(line.startswith("onnx: not made") for line in result.skipped)
    assert not (tmp_path / "default" / "model.onnx").exists() and "onnx" not in result.files
    assert "onnx" not in {row["artefact"] for row in result.parity}


def test_a_failed_re_export_keeps_the_previous_export(tmp_path, exported):
    images, labels = separable_data(20, SIZE, 2)
    data = ttf.data.from_arrays(images, labels, ["a", "b"], image_size=SIZE, validation_split=0.5)
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("previous export")
    with pytest.raises(ttf.FlexOpsRequiredError):
        ttf.export(_classifier_needing_flex_ops(), out, precisions=["float32"], data=data,
                   overwrite=True, verbose=0)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_config_objects_refuse_options_they_would_ignore():
    assert ttf.TFLiteConfig.from_name("dynamic-range") == ttf.TFLiteConfig.dynamic_range()
    with pytest.raises(ValueError, match="precision must be one of .*Received: precision='int4'"):
        ttf.TFLiteConfig.from_name("int4")
    with pytest.raises(ValueError, match="only apply to int8"):
        ttf.TFLiteConfig("float16", integer_io=True)
    with pytest.raises(ValueError, match="num_calibration_images must be an int >= 1"):
        ttf.TFLiteConfig.int8(num_calibration_images=0)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(precisions=["float32", "fp8"]), ValueError, "Received: precision='fp8'"),
    (dict(precisions=["int8", "int8"]), ValueError, "once"),
    (dict(precisions=[ttf.TFLiteConfig.int8(np.zeros((4, 16, 16, 3)))]), ValueError,
     r"shape \(N, 32, 32, 3\).*Received shape \(4, 16, 16, 3\)"),
    (dict(data=None), ValueError, "needs held-out images"),
    (dict(data=np.zeros((4, SIZE, SIZE, 3))), TypeError, "data must be an ImageSplits"),
    (dict(num_parity_images=0), ValueError, "num_parity_images must be an int >= 1"),
])
def test_bad_arguments_fail_before_writing_anything(classifier, data, tmp_path, kwargs, error, message):
    kwargs = {"data": data, **kwargs}
    with pytest.raises(error, match=message):
        ttf.export(classifier, tmp_path / "out", verbose=0, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_data_without_held_out_images_or_with_other_classes_is_refused(classifier, tmp_path):
    images, labels = separable_data(30, SIZE, 3)
    no_held_out = ttf.data.from_arrays(images, labels, CLASSES, image_size=SIZE)
    with pytest.raises(ValueError, match="no validation or test images"):
        ttf.export(classifier, tmp_path / "out", data=no_held_out, verbose=0)
    other = ttf.data.from_arrays(images, labels, ["x", "y", "z"], image_size=SIZE, validation_split=0.3)
    with pytest.raises(ValueError, match=r"classes \['x', 'y', 'z'\] differ"):
        ttf.export(classifier, tmp_path / "out", data=other, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_missing_incomplete_and_unwritable_paths(tmp_path, classifier, data):
    with pytest.raises(FileNotFoundError, match="No run folder"):
        ttf.export(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="model.keras is missing"):
        ttf.export(tmp_path / "half")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(PermissionError, match="Cannot write"):
        ttf.export(classifier, tmp_path / "a_file" / "out", precisions=["float32"], data=data, verbose=0)
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        ttf.export(classifier, tmp_path / "taken", data=data, verbose=0)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_cli") / "shades"
    write_class_folder(root, ["dark", "light"], per_class=12, value_of=lambda label: 30 + 190 * label)
    out = tmp_path_factory.mktemp("runs") / "shades"
    assert cli.main([
        "train", str(root), "--backbone", "vgg16", "--weights", "none",
        "--image-size", "32", "--head-epochs", "1", "--fine-tune-epochs", "0", "--batch-size", "8",
        "--dtype", "mixed_bfloat16", "--out", str(out), "--quiet",
    ]) == 0
    return out


@pytest.mark.slow
def test_cli_export_re_reads_the_runs_data_and_prints_the_table(folder_run, capsys):
    assert cli.main(["export", str(folder_run), "--precision", "float32", "dynamic-range",
                     "--formats", "saved_model,tflite", "--latency-repeats", "2"]) == 0
    printed = capsys.readouterr().out
    for artefact in ("keras", "saved_model", "float32", "dynamic_range"):
        assert f"\n{artefact} " in printed
    # Trained in mixed bfloat16 (--dtype), exported and checked as a float32 copy.
    assert "computes in mixed_bfloat16; exporting a float32 copy" in printed
    assert "100.00%" in printed.split("\nfloat32 ")[1].splitlines()[0]
    card = json.loads((folder_run / "export" / "model_card.json").read_text())
    assert card["trained_dtype_policy"] == "mixed_bfloat16"
    assert not any(q["flex_ops"] for q in card["quantization"])
    assert card["name"] == "shades" and card["labels"] == ["dark", "light"]
    assert card["metrics"]["held_out"]["split"] == "validation"
    assert sorted(p.name for p in (folder_run / "export").glob("*.tflite")) == [
        "model_dynamic_range.tflite", "model_float32.tflite",
    ]


def test_cli_export_errors_are_one_line(folder_run, capsys):
    assert cli.main(["export", str(folder_run), "--precision", "float32", "--integer-io"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("transfer-tf: error: --integer-io and --calibration-images apply to int8")
    assert "Traceback" not in err
