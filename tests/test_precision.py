"""Mixed precision: 16-bit compute, float32 weights and outputs, same training cached or not."""

import json

import keras
import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.model.precision import compute_dtypes, dtype_policy_scope

from conftest import separable_data
from test_feature_cache import classifier, weights_of


@pytest.fixture(scope="module")
def data():
    return separable_data(48, 32, 3), separable_data(15, 32, 3, seed=1)


def test_mixed_policy_computes_in_16_bits_with_float32_weights_and_output():
    clf = classifier(dtype="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone
    assert compute_dtypes(clf.base) == ["bfloat16"]
    assert clf.preprocessor.compute_dtype == "float32"
    assert clf.head.layers[-1].compute_dtype == "float32"
    assert {w.dtype for w in clf.weights} == {"float32"}
    scores = clf.predict(separable_data(4, 32, 3)[0], verbose=0)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)


def test_bad_dtype_is_refused_and_the_scope_always_restores_the_policy():
    with pytest.raises(ValueError, match="Received: dtype='bfloat16'"):
        classifier(dtype="bfloat16")
    with pytest.raises(RuntimeError):
        with dtype_policy_scope("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == "float32"


def test_mixed_bfloat16_trains_the_same_cached_or_not(data):
    (x, y), (vx, vy) = data
    runs = {}
    for mode in ("off", "memory"):
        clf = classifier(dtype="mixed_bfloat16")
        before = weights_of(clf.base)
        result = ttf.fine_tune(clf, (x, y), (vx, vy), head_epochs=1, fine_tune_epochs=2,
                               batch_size=16, seed=0, verbose=0, feature_cache=mode)
        runs[mode] = clf, result, before
    (plain, plain_result, before), (cached, cached_result, _) = runs["off"], runs["memory"]
    assert cached_result.cache["phases"] == ["head", "fine_tune"]
    # Not equal to float32 tolerance: a fused and an unfused kernel round to
    # bfloat16 at different points, and Adam's step can flip on near-zero
    # gradients. The losses are equal to bfloat16 tolerance, epoch for epoch.
    # An accuracy counts images, and that rounding can move one image near the
    # boundary to the other side (seen with AMX's bfloat16 kernels): at most
    # one image of the split per epoch.
    one_image = {"accuracy": 1 / len(y), "val_accuracy": 1 / len(vy)}
    for key, values in plain_result.history.items():
        np.testing.assert_allclose(cached_result.history[key], values, atol=one_image.get(key, 2e-3) + 1e-6)
    np.testing.assert_allclose(cached.predict(vx, verbose=0), plain.predict(vx, verbose=0), atol=5e-3)
    moved = [not np.array_equal(a, b) for a, b in zip(before, weights_of(cached.base))]
    assert any(moved) and not all(moved)  # block5 trained, the rest did not
    assert compute_dtypes(cached.base) == ["bfloat16"]  # training kept the policy


def test_disk_cache_is_not_shared_between_precisions(data, tmp_path):
    (x, y), _ = data
    reused = []
    for dtype in ("float32", "mixed_bfloat16"):
        result = ttf.fine_tune(classifier(dtype=dtype), (x, y), head_epochs=1, fine_tune_epochs=0,
                               batch_size=16, seed=0, verbose=0, feature_cache=tmp_path)
        reused.append(result.cache["reused"])
    assert reused == [False, False]
    keys = [json.loads(p.read_text()) for p in tmp_path.glob("*/key.json")]
    assert sorted(k["compute_dtypes"] == ["bfloat16"] for k in keys) == [False, True]


def test_mixed_float16_phases_train_with_loss_scaling(data):
    (x, y), (vx, vy) = data
    seen = []

    class RecordOptimizer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append((type(self.model).__name__, type(self.model.optimizer).__name__))

    clf = classifier(dtype="mixed_float16")
    result = ttf.fine_tune(clf, (x, y), (vx, vy), head_epochs=1, fine_tune_epochs=1, batch_size=16,
                           seed=0, verbose=0, callbacks=[RecordOptimizer()])
    assert [model for model, _ in seen] == ["Functional", "TopAndHead"]
    assert {optimizer for _, optimizer in seen} == {"LossScaleOptimizer"}
    assert np.isfinite(result.history["loss"]).all()


def test_float32_copy_and_a_saved_run_keep_the_weights(data, tmp_path):
    (x, y), _ = data
    clf = classifier(dtype="mixed_bfloat16")
    ttf.fine_tune(clf, (x, y), head_epochs=1, fine_tune_epochs=1, batch_size=16, seed=0, verbose=0)
    twin = ttf.float32_copy(clf)
    assert compute_dtypes(twin) == ["float32"] and ttf.float32_copy(twin) is twin
    for a, b in zip(weights_of(clf), weights_of(twin)):
        np.testing.assert_array_equal(a, b)
    mixed, exact = clf.predict(x, verbose=0), twin.predict(x, verbose=0)
    assert 0 < np.abs(mixed - exact).max() < 0.02  # bfloat16 rounding, no more
    assert twin.training_record is clf.training_record

    clf.save(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dtype_policy"] == "mixed_bfloat16"
    loaded = ttf.load(tmp_path / "run")
    assert compute_dtypes(loaded.base) == ["bfloat16"]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), mixed)
