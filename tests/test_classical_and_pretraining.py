"""Classical estimators on deep features (linear ones become the head), and pretraining on unlabelled images."""

import json
import os

import keras
import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.core import integrity as ttf_integrity
from transfer_tf import cli
from transfer_tf.methods.classical import copy_linear_head, extract_features, fit_estimator
from transfer_tf.methods.pretraining import Reconstruction

from conftest import separable_data
from image_files import write_class_folder


@pytest.fixture(scope="module")
def data():
    return separable_data(40, 32, 3)


def _classifier(task="multiclass", classes=3):
    return ttf.ImageClassifier.from_backbone("vgg16", num_classes=classes, image_size=32, weights=None,
                                             task=task, seed=0)


def test_features_are_the_pooled_base_outputs_in_natural_order(data):
    x, y = data
    clf = _classifier()
    features = extract_features(clf, (x, y), verbose=False)
    expected = np.asarray(clf.extract_features(x)).mean(axis=(1, 2))
    np.testing.assert_allclose(features.features, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(features.labels, y)


@pytest.mark.parametrize("task, classes, estimator", [
    ("multiclass", 3, "logistic"), ("multiclass", 2, "logistic"), ("binary", 2, "logistic"),
    ("multiclass", 3, "linear_svm"),
])
def test_a_linear_estimator_becomes_the_head_and_gives_its_own_scores(data, task, classes, estimator):
    x, y = data
    y = y % classes
    clf = _classifier(task, classes)
    features = extract_features(clf, (x, y), verbose=False)
    pipeline, params, _ = fit_estimator(features.features, y, estimator, cv=2)
    copy_linear_head(pipeline, clf)
    scores = ttf.predict_dataset(clf, ttf.data.from_arrays(x, y).train)
    ours = clf.predict(x, verbose=0)
    if estimator == "logistic":
        theirs = pipeline.predict_proba(features.features)
        if task == "binary":
            theirs = theirs[:, 1:]
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    else:  # a linear SVM has no probabilities: the head's logits are its decision function
        np.testing.assert_array_equal(ours.argmax(-1), pipeline.predict(features.features))
    assert scores.scores.shape == (len(x), classes)


def test_the_linear_classifier_saves_loads_and_exports(data, tmp_path):
    x, y = data
    clf = ttf.fit_classical(_classifier(), (x, y), cv=2, verbose=False)
    assert clf.training_record.settings["estimator"] == "logistic"
    run = clf.save(tmp_path / "run")
    loaded = ttf.load(run)
    assert isinstance(loaded, ttf.ImageClassifier)
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), clf.predict(x[:4], verbose=0), atol=1e-6)
    splits = ttf.data.from_arrays(x, y, validation_split=0.5)
    exported = ttf.export(run, tmp_path / "export", precisions=["float32"], formats=["tflite"], data=splits,
                          latency_repeats=1, verbose=0)
    assert exported.parity[-1]["agreement"] == 1.0


@pytest.mark.parametrize("estimator", ["knn", "rbf_svm"])
def test_a_non_linear_estimator_round_trips_through_its_skops_file(data, tmp_path, estimator):
    x, y = data
    model = ttf.fit_classical(_classifier(), (x, y), estimator=estimator, cv=2, verbose=False)
    assert isinstance(model, ttf.EstimatorClassifier)
    scores = model.predict(x)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    run = model.save(tmp_path / "run")
    assert (run / "estimator.skops").is_file()
    assert json.loads((run / "config.json").read_text())["classical_head"]["estimator"] == estimator
    loaded = ttf.load(run)
    assert isinstance(loaded, ttf.EstimatorClassifier) and loaded.estimator_name == estimator
    np.testing.assert_allclose(loaded.predict(x), scores, atol=1e-6)
    assert ttf.evaluate(loaded, ttf.data.from_arrays(x, y).train)["num_images"] == len(x)
    with pytest.raises(ValueError, match=f"non-linear scikit-learn head \\({estimator}\\).*cannot be exported"):
        ttf.export(run, tmp_path / "export", verbose=0)


def test_an_estimator_file_with_untrusted_types_is_refused(data, tmp_path):
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import SVC

    x, y = data
    run = ttf.fit_classical(_classifier(), (x, y), estimator="knn", cv=2, verbose=False).save(tmp_path / "run")
    marker = tmp_path / "pwned"
    evil = make_pipeline(FunctionTransformer(os.system, kw_args={"command": f"touch {marker}"}), SVC())
    (run / "estimator.skops").write_bytes(sio.dumps(evil))
    with pytest.raises(ttf_integrity.DamagedFileError, match="estimator.skops is damaged"):
        ttf.load(run)  # the checksum recorded at saving catches the swap first
    with pytest.raises(ValueError, match=r"types transfer_tf does not trust: .*system.*refused"):
        ttf.load(run, verify=False)  # and skops refuses it even then
    assert not marker.exists()


def test_cli_train_with_a_classical_head(tmp_path, capsys):
    folder = tmp_path / "shapes"
    write_class_folder(folder, ["dark", "mid", "light"], per_class=8)
    out = tmp_path / "run"
    common = ["--backbone", "vgg16", "--weights", "none", "--image-size", "32", "--quiet"]
    assert cli.main(["train", str(folder), *common, "--head", "knn", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["estimator"] == "knn" and config["classical_head"]["file"] == "estimator.skops"
    assert (out / "report.md").is_file() and json.loads((out / "metrics.json").read_text())["num_images"] > 0
    assert cli.main(["export", str(out)]) == 1
    assert "cannot be exported" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("method", ["autoencoder", "masked"])
def test_pretraining_trains_the_base_with_batchnorm_in_training_mode(method, tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=2, image_size=32, weights=None)
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in clf.base.weights}
    result = ttf.pretrain(clf, images, method=method, epochs=2, batch_size=8, seed=0, verbose=0)
    after = {w.path: keras.ops.convert_to_numpy(w) for w in result.base.weights}
    bn = [layer for layer in ttf.all_layers(result.base) if ttf.is_batchnorm(layer)]
    assert all(layer.momentum == 0.9 for layer in bn)
    assert all(not np.array_equal(before[layer.moving_mean.path], after[layer.moving_mean.path]) for layer in bn)
    moved = [p for p in before if not np.array_equal(before[p], after[p])]
    assert len(moved) > 0.9 * len(before)
    losses = result.record.history["loss"]
    assert len(losses) == 2 and np.isfinite(losses).all()
    folder = result.save(tmp_path / "pretrained")
    # The folder is a weights source like any other; the decoder is not in it.
    target = ttf.ImageClassifier.from_backbone("mobilenetv3small", class_names=["a", "b", "c"], image_size=48,
                                               weights=folder)
    for ours, theirs in zip(target.base.weights, result.base.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))
    assert not any("decoder" in layer.name for layer in keras.saving.load_model(
        folder / "model.keras", safe_mode=True).layers)


def test_masks_hide_about_their_ratio_and_only_hidden_pixels_count(tmp_path):
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=2, image_size=32, weights=None)
    model = Reconstruction(clf.preprocessor, clf.base, (32, 32), mask_ratio=0.5, patch_size=8)
    mask = model._mask(np.zeros((64, 32, 32, 3), np.float32)).numpy()
    assert 0.4 < mask.mean() < 0.6 and set(np.unique(mask)) <= {0.0, 1.0}
    # Whole 8 x 8 patches are hidden, never parts of them.
    patches = mask[..., 0].reshape(64, 4, 8, 4, 8).transpose(0, 1, 3, 2, 4).reshape(64, 16, 64)
    assert ((patches.min(-1) == patches.max(-1))).all()


@pytest.mark.slow
def test_cli_pretrain_then_train_from_it(tmp_path, capsys):
    folder = tmp_path / "shapes"
    write_class_folder(folder, ["dark", "light"], per_class=6)
    out = tmp_path / "pretrained"
    assert cli.main(["pretrain", str(folder), "--backbone", "vgg16", "--image-size", "32",
                     "--epochs", "1", "--method", "masked", "--out", str(out), "--quiet"]) == 0
    assert f"--weights {out}" in capsys.readouterr().out
    run = tmp_path / "run"
    assert cli.main(["train", str(folder), "--backbone", "vgg16", "--weights", str(out),
                     "--image-size", "32", "--head-epochs", "1", "--fine-tune-epochs", "0",
                     "--out", str(run), "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["weights"] == str(out.resolve())
