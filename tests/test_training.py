"""The two-phase trainer: what trains, what must not move, and when."""

import keras
import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.backbones.blocks import block_layers
from transfer_tf.model.freezing import all_layers, is_batchnorm
from transfer_tf.data.inputs import class_weight_for

from conftest import random_images, separable_data


class Snapshots(keras.callbacks.Callback):
    """Records the base's weights at the end of each phase, and the learning
    rate at the start of each epoch."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier
        self.initial = _weights_by_path(classifier.base)
        self.head_initial = _weights_by_path(classifier.head)
        self.after_phase = []
        self.head_after_phase = []
        self.learning_rates = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.learning_rates[epoch] = float(self.model.optimizer.learning_rate)

    def on_train_end(self, logs=None):
        self.after_phase.append(_weights_by_path(self.classifier.base))
        self.head_after_phase.append(_weights_by_path(self.classifier.head))


def _weights_by_path(model):
    return {w.path: np.array(w.numpy()) for w in model.weights}


def _layer_paths(layers):
    return {w.path for layer in layers for w in layer.weights}


def _two_phase_run(backbone, *, unfreeze_blocks=1, train_bn=False, size=32):
    clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=size, weights=None)
    x, y = separable_data(16, size, 2)
    snapshots = Snapshots(clf)
    result = ttf.fine_tune(
        clf, (x, y), (x[:8], y[:8]), head_epochs=2, fine_tune_epochs=2,
        unfreeze_blocks=unfreeze_blocks, train_bn=train_bn, head_lr=1e-3,
        fine_tune_lr=1e-3, batch_size=8, callbacks=[snapshots], verbose=0, seed=1,
    )
    return clf, snapshots, result


# Both phases run on cached tensors here (the default); test_feature_cache.py
# shows that equals the uncached path, and the "all" test below runs phase 2
# through the whole classifier.
@pytest.mark.parametrize("backbone,top_block", [("vgg16", "block5"), ("resnet50", "conv5")])
def test_phases_train_only_what_they_should(backbone, top_block):
    clf, snap, result = _two_phase_run(backbone)
    assert result.cache["phases"] == ["head", "fine_tune"]
    initial, after_head, after_tune = snap.initial, *snap.after_phase

    # Phase 1: every base weight bit-identical, the head's weights moved.
    for path, value in initial.items():
        assert np.array_equal(after_head[path], value), f"{path} moved in phase 1"
    head_after = snap.head_after_phase[0]
    assert head_after and all(
        not np.array_equal(head_after[p], value) for p, value in snap.head_initial.items()
    )

    # Phase 2: the top block's weights moved; everything below is identical.
    groups = block_layers(clf.base, clf.backbone_spec)
    top = _layer_paths(groups[top_block])
    below = _layer_paths(layer for name, layers in groups.items() if name != top_block for layer in layers)
    bn = _layer_paths(layer for layer in all_layers(clf.base) if is_batchnorm(layer))
    trainable_top = top - bn
    assert trainable_top
    assert any(not np.array_equal(after_tune[p], initial[p]) for p in trainable_top)
    for path in below:
        assert np.array_equal(after_tune[path], initial[path]), f"{path} below the top block moved"
    # BatchNorm: moving mean/variance (and, with train_bn=False, gamma/beta)
    # bit-identical everywhere, the top block included.
    for path in bn:
        assert np.array_equal(after_tune[path], initial[path]), f"BatchNorm weight {path} moved"
    assert result.phases[1].trainable_blocks == [top_block]


def test_phase_one_trains_the_head():
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    before = _weights_by_path(clf.head)
    x, y = separable_data(16, 32, 2)
    ttf.fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=0, verbose=0)
    after = _weights_by_path(clf.head)
    assert all(not np.array_equal(after[p], before[p]) for p in before)


def test_train_bn_trains_gamma_beta_but_never_the_statistics():
    clf, snap, _ = _two_phase_run("resnet50", train_bn=True)
    initial, _, after_tune = snap.initial, *snap.after_phase
    top_bn = [layer for layer in block_layers(clf.base, clf.backbone_spec)["conv5"] if is_batchnorm(layer)]
    gamma_beta = {w.path for layer in top_bn for w in (layer.gamma, layer.beta)}
    stats = {w.path for layer in all_layers(clf.base) if is_batchnorm(layer)
             for w in (layer.moving_mean, layer.moving_variance)}
    assert any(not np.array_equal(after_tune[p], initial[p]) for p in gamma_beta)
    for path in stats:
        assert np.array_equal(after_tune[path], initial[path]), f"{path} moved"


def test_learning_rates_and_epoch_numbers_of_each_phase():
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    snap = Snapshots(clf)
    x, y = separable_data(16, 32, 2)
    result = ttf.fine_tune(
        clf, (x, y), (x, y), head_epochs=2, fine_tune_epochs=3, head_lr=2e-3,
        callbacks=[snap], verbose=0,
    )
    # fine_tune_lr defaults to head_lr / 100; epochs continue from phase 1.
    assert snap.learning_rates == pytest.approx({0: 2e-3, 1: 2e-3, 2: 2e-5, 3: 2e-5, 4: 2e-5})
    assert float(clf.optimizer.learning_rate) == pytest.approx(2e-5)
    assert result.phase_boundary == 2
    assert [p.first_epoch for p in result.phases] == [0, 2]
    assert len(result.history["val_loss"]) == 5
    assert result.phases[1].learning_rate == pytest.approx(2e-5)
    assert result.phases[0].best["val_loss"] == min(result.history["val_loss"][:2])


def test_explicit_fine_tune_lr_is_used():
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    x, y = separable_data(8, 32, 2)
    ttf.fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=1, fine_tune_lr=3e-4, verbose=0)
    assert float(clf.optimizer.learning_rate) == pytest.approx(3e-4)


def test_unfreeze_zero_keeps_the_whole_base_fixed():
    clf, snap, result = _two_phase_run("vgg16", unfreeze_blocks=0)
    for path, value in snap.initial.items():
        assert np.array_equal(snap.after_phase[1][path], value)
    assert result.phases[1].trainable_blocks == []


def test_unfreeze_all_trains_every_block_but_not_batchnorm():
    clf, snap, result = _two_phase_run("resnet50", unfreeze_blocks="all")
    groups = block_layers(clf.base, clf.backbone_spec)
    for name, layers in groups.items():
        paths = _layer_paths(layer for layer in layers if not is_batchnorm(layer))
        assert any(not np.array_equal(snap.after_phase[1][p], snap.initial[p]) for p in paths), name
    for layer in all_layers(clf.base):
        if is_batchnorm(layer):
            for w in layer.weights:
                assert np.array_equal(snap.after_phase[1][w.path], snap.initial[w.path])
    assert result.phases[1].trainable_blocks == list(clf.backbone_spec.block_names)


def test_same_seed_same_weights():
    def run():
        keras.utils.set_random_seed(5)
        clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
        x, y = separable_data(16, 32, 2)
        ttf.fine_tune(clf, (x, y), head_epochs=2, fine_tune_epochs=1, seed=3, verbose=0)
        return [w.numpy() for w in clf.weights]

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_best_and_needs_validation():
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    x, y = separable_data(16, 32, 2)
    with pytest.raises(ValueError, match="pass validation_data"):
        ttf.fine_tune(clf, (x, y), early_stopping_patience=1, verbose=0)
    # A learning rate this high makes validation loss rise at once.
    result = ttf.fine_tune(
        clf, (x, y), (x, 1 - y), head_epochs=6, fine_tune_epochs=0, head_lr=0.5,
        early_stopping_patience=0, verbose=0,
    )
    assert 1 <= result.phases[0].epochs < 6


@pytest.mark.parametrize("blocks", [6, -1, "top", 1.5])
def test_unfreeze_blocks_out_of_range(blocks):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    x, y = separable_data(8, 32, 2)
    with pytest.raises(ValueError, match=r"from 0 to 5 \(vgg16 has blocks block1, .*Received: unfreeze_blocks="):
        ttf.fine_tune(clf, (x, y), unfreeze_blocks=blocks, verbose=0)


def test_images_of_the_wrong_size_are_refused_before_training():
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    x = random_images(4, 48)
    with pytest.raises(ValueError, match=r"shape \(batch, 32, 32, 3\).*Received"):
        ttf.fine_tune(clf, (x, np.zeros(4)), verbose=0)


def test_dataset_with_batch_size_is_refused():
    import tensorflow as tf

    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    ds = tf.data.Dataset.from_tensor_slices((random_images(4, 32), np.zeros(4))).batch(2)
    with pytest.raises(ValueError, match="already batched"):
        ttf.fine_tune(clf, ds, batch_size=2, verbose=0)


def test_balanced_class_weight():
    import tensorflow as tf

    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=32, weights=None)
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    ds = tf.data.Dataset.from_tensor_slices((random_images(10, 32), labels)).batch(4)
    weights = class_weight_for("balanced", ds, clf)
    assert weights == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})
    missing = tf.data.Dataset.from_tensor_slices((random_images(4, 32), np.array([0, 0, 1, 1]))).batch(2)
    with pytest.raises(ValueError, match=r"no images of \['2'\]"):
        class_weight_for("balanced", missing, clf)


def test_label_smoothing_and_class_weight_train():
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=32, weights=None)
    x, y = separable_data(12, 32, 3)
    result = ttf.fine_tune(
        clf, (x, y), (x, y), head_epochs=1, fine_tune_epochs=1, label_smoothing=0.1,
        class_weight="balanced", verbose=0,
    )
    assert clf.loss.label_smoothing == pytest.approx(0.1)
    assert np.isfinite(result.history["loss"]).all()


@pytest.mark.parametrize("task,labels,units", [
    ("binary", np.array([0, 1] * 4), 1),
    ("multilabel", np.array([[1, 0, 1], [0, 1, 0]] * 4, dtype="float32"), 3),
])
def test_binary_and_multilabel_tasks_train(task, labels, units):
    clf = ttf.ImageClassifier.from_backbone(
        "vgg16", num_classes=2 if task == "binary" else 3, image_size=32, weights=None, task=task)
    result = ttf.fine_tune(clf, (random_images(8, 32), labels), head_epochs=1, fine_tune_epochs=1, verbose=0)
    probabilities = clf.predict(random_images(2, 32), verbose=0)
    assert probabilities.shape == (2, units)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert np.isfinite(result.history["loss"]).all()


@pytest.mark.parametrize("weights,match", [
    ([1, 2], "must be a dict, 'balanced' or None"),
    ({0: 1.0}, r"a weight for each class index 0..1"),
    ({0: "a", 1: 1.0}, "map class indices to numbers"),
])
def test_bad_class_weight_is_refused(weights, match):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    x, y = separable_data(4, 32, 2)
    with pytest.raises(ValueError, match=match):
        ttf.fine_tune(clf, (x, y), class_weight=weights, verbose=0)


def test_numpy_class_weight_keys_are_saved(tmp_path):
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    x, y = separable_data(4, 32, 2)
    ttf.fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=0,
                  class_weight={np.int64(0): np.float32(1.0), np.int64(1): 2.0}, verbose=0)
    clf.save(tmp_path / "run")
    assert ttf.load(tmp_path / "run").training_record.settings["class_weight"] == {"0": 1.0, "1": 2.0}


@pytest.mark.parametrize("cache", ["off", "memory"])
def test_each_phase_traces_its_training_step_once(cache, monkeypatch):
    # Keras creates the optimizer's variables in the first step unless it is built before `fit`,
    # and TensorFlow then traces that step twice.
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traced = []
    step = TensorFlowTrainer.train_step
    monkeypatch.setattr(TensorFlowTrainer, "train_step",
                        lambda self, data: traced.append(self.name) or step(self, data))
    x, y = separable_data(16, 32, 2)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=32, weights=None)
    ttf.fine_tune(clf, (x, y), (x, y), head_epochs=1, fine_tune_epochs=1, batch_size=8, feature_cache=cache,
                  verbose=0)
    assert len(traced) == 2, traced
