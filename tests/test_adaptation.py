"""Domain adaptation: gradient reversal, AdaBN's statistics, CORAL's loss, DANN/CORAL end to end."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.cli.jobs import format_training
from transfer_tf.methods.alignment import GradientReversal, coral_loss

from conftest import separable_data
from image_files import write_class_folder


def test_gradient_reversal_is_identity_forward_and_flips_the_gradient():
    layer = GradientReversal(0.5)
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 4)), tf.float32)
    upstream = tf.constant(np.random.default_rng(1).normal(size=(3, 4)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        objective = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(objective, x).numpy(), -0.5 * upstream.numpy(), rtol=1e-6)
    layer.set_weight(2.0)  # the schedule changes it between steps
    with tf.GradientTape() as tape:
        tape.watch(x)
        objective = tf.reduce_sum(layer(x) * upstream)
    np.testing.assert_allclose(tape.gradient(objective, x).numpy(), -2.0 * upstream.numpy(), rtol=1e-6)


def test_coral_loss_is_zero_for_equal_statistics_and_positive_otherwise():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(64, 8)).astype("float32")
    assert float(coral_loss(source, source)) == pytest.approx(0.0, abs=1e-12)
    assert float(coral_loss(source, source + 3.0)) == pytest.approx(0.0, abs=1e-6)  # a shift keeps the covariance
    assert float(coral_loss(source, 2.0 * source)) > 0.01
    assert float(coral_loss(source, rng.normal(size=(40, 8)).astype("float32") @ np.diag(range(1, 9)))) > 0.1


def _weights(model):
    return {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}


@pytest.mark.parametrize("backbone", ["mobilenetv3small", "efficientnet_lite0"])  # the latter has Dropout inside
def test_adabn_changes_only_batchnorm_statistics_to_the_targets_average(backbone):
    clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=32, weights=None)
    bn = [layer for layer in ttf.all_layers(clf.base) if ttf.is_batchnorm(layer)]
    flags = [(layer.trainable, layer.momentum) for layer in bn]
    dropout = [(layer, layer.rate) for layer in ttf.all_layers(clf.base) if isinstance(layer, keras.layers.Dropout)]
    assert dropout or backbone == "mobilenetv3small"
    before = _weights(clf)
    target = np.random.default_rng(0).uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    result = ttf.adapt(clf, None, target, method="adabn", batch_size=16, verbose=0)
    after = _weights(clf)
    statistics = {w.path for layer in bn for w in (layer.moving_mean, layer.moving_variance)}
    for path, value in before.items():
        if path in statistics:
            assert not np.array_equal(after[path], value), f"{path} was not re-estimated"
        else:
            np.testing.assert_array_equal(after[path], value, err_msg=f"{path} changed")
    assert [(layer.trainable, layer.momentum) for layer in bn] == flags
    assert all(layer.rate == rate for layer, rate in dropout)
    assert result.phases[0].name == "adabn" and clf.training_record.settings["method"] == "adabn"
    # The first BatchNorm's statistics are exactly those of its input over the target images.
    first = bn[0]
    producer = keras.Model(clf.base.input, clf.base.get_layer(first.name).input)
    activations = producer.predict(clf.preprocessor(target), verbose=0)
    np.testing.assert_allclose(first.moving_mean.numpy(), activations.mean(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def domains():
    """Source: brightness tells the class. Target: the same classes, darker and with less contrast."""
    x, y = separable_data(48, 32, 2)
    tx, ty = separable_data(48, 32, 2, seed=5)
    return (x, y), (np.clip(0.6 * tx + 20, 0, 255).astype("float32"), ty)


@pytest.mark.parametrize("method", ["dann", "coral"])
def test_alignment_trains_the_top_and_head_and_saves_an_ordinary_classifier(domains, method, tmp_path):
    (x, y), (tx, ty) = domains
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    before = _weights(clf)
    result = ttf.adapt(clf, (x, y), tx, method=method, head_epochs=1, fine_tune_epochs=2,
                       unfreeze_blocks=1, fine_tune_lr=1e-3, batch_size=16, seed=0, verbose=0,
                       target_labelled=(tx[:8], ty[:8]) if method == "coral" else None)
    assert [p.name for p in result.phases] == ["head", method]
    assert result.phases[1].epochs == 2 and "alignment_loss" in result.history
    assert np.isfinite([v for v in result.history["alignment_loss"] if v is not None]).all()
    moved = {path for path, value in before.items() if not np.array_equal(value, _weights(clf)[path])}
    groups = ttf.block_layers(clf.base, clf.backbone_spec)
    top = {w.path for layer in groups["block5"] for w in layer.weights}
    assert moved & top and not moved - top - {w.path for w in clf.head.weights}
    assert result.cache["phases"] == ["head", method] and result.cache["cut"] == "block5"
    run = clf.save(tmp_path / "run")
    with zipfile.ZipFile(run / "model.keras") as archive:
        config = archive.read("config.json").decode()
    assert "GradientReversal" not in config and "domain_classifier" not in config
    loaded = ttf.load(run)
    np.testing.assert_allclose(loaded.predict(tx[:4], verbose=0), clf.predict(tx[:4], verbose=0), atol=1e-6)
    assert loaded.training_record.settings["method"] == method



def _normalised_by_first_batchnorm(clf, images):
    first = next(layer for layer in ttf.all_layers(clf.base) if ttf.is_batchnorm(layer))
    return keras.Model(clf.base.input, clf.base.get_layer(first.name).output).predict(
        clf.preprocessor(images), verbose=0)


def test_adabn_with_source_data_maps_the_targets_moments_onto_the_sources():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 255, (48, 32, 32, 3)).astype("float32")
    target = (0.3 * rng.uniform(0, 255, (48, 32, 32, 3)) + 40).astype("float32")  # darker, less contrast
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=2, image_size=32, weights=None)
    other = rng.uniform(150, 255, (48, 32, 32, 3)).astype("float32")
    ttf.adapt(clf, None, other, method="adabn", batch_size=16, verbose=0)  # statistics of a third look
    seen_on_source = _normalised_by_first_batchnorm(clf, source)
    before = _weights(clf)
    ttf.adapt(clf, source, target, method="adabn", batch_size=16, verbose=0)
    seen_on_target = _normalised_by_first_batchnorm(clf, target)
    # The model's statistics are not the source's; the first layer now sees the target as it
    # saw the source: the same per-channel mean and spread.
    assert np.abs(seen_on_source.mean(axis=(0, 1, 2))).max() > 0.3
    np.testing.assert_allclose(seen_on_target.mean(axis=(0, 1, 2)), seen_on_source.mean(axis=(0, 1, 2)),
                               atol=0.02 * seen_on_source.std())
    np.testing.assert_allclose(seen_on_target.std(axis=(0, 1, 2)), seen_on_source.std(axis=(0, 1, 2)), rtol=0.05)
    changed = {path for path, value in _weights(clf).items() if not np.array_equal(value, before[path])}
    assert changed and all("moving_" in path for path in changed)


def test_adabn_with_the_source_as_target_leaves_the_model_as_it_is(capsys):
    source = np.random.default_rng(1).uniform(0, 255, (32, 32, 32, 3)).astype("float32")
    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", num_classes=3, image_size=32, weights=None)
    predicted = clf.predict(source, verbose=0)
    result = ttf.adapt(clf, source, source, method="adabn", batch_size=32, verbose=1)  # one batch: the same moments
    np.testing.assert_allclose(clf.predict(source, verbose=0), predicted, atol=1e-4)
    printed = capsys.readouterr().out
    # Each progress bar ends its line: the next message starts one of its own.
    assert [line for line in printed.splitlines() if "AdaBN:" in line] == [
        "AdaBN: BatchNorm statistics of the source images ...", "AdaBN: BatchNorm statistics of the target images ..."]
    summary = format_training(result)
    assert summary.split() == ["adabn", "1", "epochs", summary.split()[3], "s"]  # no metric, so no "best n/a"
    plain = ttf.ImageClassifier.from_backbone("efficientnet_lite0", num_classes=3, image_size=32, weights=None)
    ttf.adapt(plain, None, source, method="adabn", batch_size=32, verbose=0)  # plain AdaBN moves it
    assert np.abs(plain.predict(source, verbose=0) - predicted).max() > 1e-3


@pytest.fixture(scope="module")
def untouched_classifier():
    """One classifier for the refusals: each test checks that its refusal left every weight as it was."""
    return ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(method="mmd"), ValueError, "Received: method='mmd'"),
    (dict(method="dann", unfreeze_blocks=0), ValueError, "unfreeze_blocks >= 1"),
    (dict(method="coral", source=None), ValueError, "pass source_data"),
    (dict(method="adabn", learning_rate=1), TypeError, "unexpected keyword"),
    (dict(method="adabn", domain_weight=0.5), ValueError, "takes no domain_weight"),
    (dict(method="adabn", target_labelled="labelled"), ValueError, "cannot use target labels"),
    (dict(method="dann", domain_weight=0), ValueError, "domain_weight"),
])
def test_bad_settings_are_refused_before_training(domains, untouched_classifier, kwargs, error, message):
    (x, y), (tx, _) = domains
    clf = untouched_classifier
    before = _weights(clf)
    source = kwargs.pop("source", (x, y))
    with pytest.raises(error, match=message):
        ttf.adapt(clf, source, tx, verbose=0, **kwargs)
    assert all(np.array_equal(v, _weights(clf)[k]) for k, v in before.items())


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A source and a target folder of two classes, and `runs[method]`: a run trained on the source by the CLI.

    AdaBN needs BatchNorm (MobileNetV3Small); the aligning methods get VGG16, which builds and
    converts several times faster.
    """
    root = tmp_path_factory.mktemp("domains")
    source, target = root / "source", root / "target"
    write_class_folder(source, ["dark", "light"], per_class=8, value_of=lambda label: 40 + 160 * label)
    write_class_folder(target, ["dark", "light"], per_class=6, value_of=lambda label: 30 + 100 * label)
    for backbone in ("mobilenetv3small", "vgg16"):
        assert cli.main(["train", str(source), "--backbone", backbone, "--weights", "none",
                         "--image-size", "32", "--head-epochs", "1", "--fine-tune-epochs", "0",
                         "--out", str(root / backbone), "--quiet"]) == 0
    runs = {"adabn": root / "mobilenetv3small", "dann": root / "vgg16", "coral": root / "vgg16"}
    return source, target, runs


@pytest.mark.slow
@pytest.mark.parametrize("method", ["adabn", "dann", "coral"])
def test_cli_adapt_on_folders_writes_a_run_that_evaluates_and_exports(folders, method, tmp_path, capsys):
    source, target, runs = folders
    run = runs[method]
    out = tmp_path / f"run-{method}"
    epochs = [] if method == "adabn" else ["--head-epochs", "1", "--fine-tune-epochs", "1"]
    assert cli.main(["adapt", str(run), str(source), str(target), "--method", method, "--batch-size", "4",
                     *epochs, "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "Target images: accuracy" in printed and str(out) in printed
    adapted = ttf.load(out)
    assert adapted.training_record.settings["method"] == method
    assert adapted.training_record.settings["batch_size"] == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 12
    if method != "adabn":
        return  # every method saves an ordinary run folder (tested above); one of them goes on to evaluate and export
    assert cli.main(["evaluate", str(out), str(target), "--quiet"]) == 0
    assert cli.main(["export", str(out), "--formats", "tflite", "--precision", "float32", "--parity-images", "12",
                     "--latency-repeats", "2", "--quiet"]) == 0, capsys.readouterr().err
    parity = json.loads((out / "export" / "parity.json").read_text())["rows"]
    assert [row["file"] for row in parity] == ["model.keras", "model_float32.tflite"]
    assert all(row["agreement"] == 1.0 for row in parity)  # each file predicts as the adapted model


@pytest.mark.parametrize("method", ["adabn", "dann", "coral"])
def test_adapt_takes_the_datasets_of_from_directory(folders, method):
    source, target, runs = folders
    run = runs[method]
    read = dict(image_size=32, validation_split=0.0, batch_size=4, verbose=False)
    source_data = ttf.data.from_directory(source, **read).train
    target_data = ttf.data.from_directory(target, **read).train
    clf = ttf.load(run)
    epochs = {} if method == "adabn" else {"head_epochs": 1, "fine_tune_epochs": 1}
    result = ttf.adapt(clf, source_data, target_data, method=method, verbose=0, seed=0, **epochs)
    assert result.settings["method"] == method
    if method != "adabn":
        assert [p.name for p in result.phases] == ["head", method]
    with pytest.raises(ValueError, match="batch_size applies to arrays only.*Received: batch_size=4"):
        ttf.adapt(clf, source_data, target_data, method=method, verbose=0, batch_size=4, **epochs)
