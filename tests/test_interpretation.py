"""Error analysis: the interpretation of predictions, and Grad-CAM (shape, range, nothing changed)."""

import numpy as np
import pytest

import transfer_tf as ttf


def _bright_square_images(count, size=32, seed=0):
    """Dark images with a bright square at a random place; returns the images and each square's box."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 40, (count, size, size, 3)).astype("float32")
    boxes = []
    for image in images:
        top, left = rng.integers(0, size - 12, 2)
        image[top:top + 12, left:left + 12] = 230
        boxes.append((top, left))
    return images, boxes


@pytest.fixture(scope="module")
def classifier():
    images, _ = _bright_square_images(32)
    dark = np.random.default_rng(1).uniform(0, 40, (32, 32, 32, 3)).astype("float32")
    x = np.concatenate([images, dark])
    y = np.array([1] * 32 + [0] * 32)
    clf = ttf.ImageClassifier.from_backbone("mobilenetv3small", num_classes=2, image_size=32, weights=None,
                                            class_names=["plain", "square"], seed=0)
    ttf.fine_tune(clf, (x, y), head_epochs=3, fine_tune_epochs=2, unfreeze_blocks="all", batch_size=16,
                  seed=0, verbose=0)
    return clf


def test_maps_have_the_input_size_and_range_and_change_nothing(classifier):
    images, _ = _bright_square_images(5, seed=2)
    before = [w.numpy().copy() for w in classifier.weights]

    maps = ttf.grad_cam(classifier, images)

    assert maps.shape == (5, 32, 32) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert all(m.max() in (0.0, 1.0) for m in maps)  # each map scaled to its own peak
    for a, b in zip(before, classifier.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_the_predicted_class_is_the_default(classifier):
    images, _ = _bright_square_images(4, seed=3)
    predicted = classifier.predict(images, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(ttf.grad_cam(classifier, images), ttf.grad_cam(classifier, images, predicted),
                               atol=1e-6)


def test_a_named_block_maps_at_that_blocks_resolution(classifier):
    images, _ = _bright_square_images(2, seed=4)
    blocks = classifier.backbone_spec.block_names
    maps = ttf.grad_cam(classifier, images, block=blocks[-2])
    assert maps.shape == (2, 32, 32) and 0.0 <= maps.min() and maps.max() <= 1.0
    with pytest.raises(ValueError, match="block must be one of .* Received: block='nope'"):
        ttf.grad_cam(classifier, images, block="nope")


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.zeros((2, 16, 16, 3))), r"images must be an array \(n, 32, 32, 3\).*Received: shape \(2, 16, 16, 3\)"),
    (dict(images=np.zeros((2, 32, 32, 3)), class_index=5), r"class_index must be in \[0, 2\). Received: class_index=5"),
])
def test_bad_arguments_are_refused_with_what_was_received(classifier, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ttf.grad_cam(classifier, **kwargs)


def _analysis():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1],
                       [0.05, 0.9, 0.05]])
    labels = np.array([0, 1, 1, 2, 1, 0])
    return ttf.Interpretation(["a", "b", "c"], labels, scores, [f"img{i}" for i in range(6)])


def test_losses_top_losses_and_the_confusion_matrix_cells():
    analysis = _analysis()
    np.testing.assert_allclose(analysis.losses, -np.log([0.9, 0.7, 0.3, 0.8, 0.4, 0.05]))
    assert list(analysis.top_losses(9)) == [5, 2, 4]  # mistakes only, highest loss first
    assert list(analysis.top_losses(2, mistakes_only=False)) == [5, 2]
    np.testing.assert_array_equal(analysis.confusion_matrix(), [[1, 1, 0], [2, 1, 0], [0, 0, 1]])
    assert list(analysis.cell(1, 0)) == [2, 4]


def test_most_confused_pairs_count_and_share_of_the_true_class():
    pairs = _analysis().most_confused()
    assert pairs[0] == {"true": "b", "predicted": "a", "count": 2, "share": pytest.approx(2 / 3)}
    assert pairs[1] == {"true": "a", "predicted": "b", "count": 1, "share": 0.5}
    assert len(pairs) == 2


def test_the_table_lists_every_image_highest_loss_first(tmp_path):
    path = _analysis().write_csv(tmp_path / "interpretation.csv")
    import csv

    rows = list(csv.DictReader(path.open()))
    assert [row["image"] for row in rows[:3]] == ["img5", "img2", "img4"] and len(rows) == 6
    assert set(rows[0]) == {"image", "true", "predicted", "loss", "p(a)", "p(b)", "p(c)"}


def test_interpret_on_arrays_writes_top_losses_with_grad_cam(classifier, tmp_path):
    from transfer_tf.evaluation.interpretation_plots import write_interpretation

    squares, _ = _bright_square_images(6, seed=5)
    plain = np.random.default_rng(6).uniform(0, 40, (6, 32, 32, 3)).astype("float32")
    images = np.concatenate([squares, plain])
    labels = np.array([0] * 6 + [1] * 6)  # every label swapped: all mistakes
    analysis = ttf.interpret(classifier, (images, labels))
    assert analysis.names[0] == "#0" and len(analysis.labels) == 12
    np.testing.assert_array_equal(analysis.images(3), np.clip(images[3], 0, 255).astype(np.uint8))
    written = write_interpretation(classifier, analysis, tmp_path, k=4)
    assert all(path.is_file() and path.stat().st_size for path in written.values())
