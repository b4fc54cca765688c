"""`transfer-tf predict`: the classes of image files."""

from pathlib import Path

import numpy as np

from transfer_tf.core.checks import check_int
from transfer_tf.data.directory import list_images
from transfer_tf.data.images import check_image, read_image
from transfer_tf.data.splits import skipped_report
from transfer_tf.evaluation.predictions import class_probabilities
from transfer_tf.methods.loading import load
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.run_data import resize_policy, run_data

PREDICT_BATCH = 32


def predict_files(run, paths, *, top_k=3, verify=True):
    """Predicts the classes of image files.

    Unreadable files are skipped and reported, not fatal.

    Args:
        run: str, path or `ImageClassifier`. A run folder (its `data.json`
            gives the resize policy) or a classifier (plain resize).
        paths: list of str or path. Image files, or folders searched
            recursively.
        top_k: int. How many classes to report per image. Defaults to `3`.
        verify: bool. Refuse a run folder whose files changed since it was
            saved (see `load`). Defaults to `True`.

    Returns:
        `(predictions, skipped)`: a list of `{"path", "top": [{"label",
        "score"}, ...]}` in file order, and a list of `(path, reason)`.

    Raises:
        FileNotFoundError: for a path that does not exist.
        ValueError: for `top_k < 1` or no image files at all.
    """
    check_int("top_k", top_k, minimum=1)
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"No such file or folder: {', '.join(missing)}")
    if isinstance(run, ImageClassifier):
        classifier, resize = run, "stretch"
    else:
        classifier = load(run, verify=verify)
        resize = resize_policy(run_data(run))
    files = list_images(paths)
    if not files:
        raise ValueError(f"No image files in {', '.join(map(str, paths))}.")
    good, skipped = [], []
    for path in files:
        reason = check_image(path)
        (skipped.append((path, reason)) if reason else good.append(path))
    predictions = []
    k = min(top_k, classifier.num_classes)
    for start in range(0, len(good), PREDICT_BATCH):
        batch = good[start:start + PREDICT_BATCH]
        images = np.stack([read_image(p, classifier.image_size, resize) for p in batch])
        scores = class_probabilities(classifier, classifier.predict(images, verbose=0))
        for path, row in zip(batch, scores):
            order = np.argsort(-row, kind="stable")[:k]
            predictions.append({
                "path": str(path),
                "top": [{"label": classifier.class_names[i], "score": float(row[i])} for i in order],
            })
    return predictions, skipped


def format_predictions(predictions, skipped):
    """One line per image: path, then labels with scores; then the skip report."""
    lines = [
        f"{p['path']}: " + ", ".join(f"{t['label']} {t['score']:.3f}" for t in p["top"])
        for p in predictions
    ]
    return "\n".join(lines + skipped_report(skipped))
