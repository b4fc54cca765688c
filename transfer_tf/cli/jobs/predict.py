"""`transfer-tf predict`: the classes of image files."""

from pathlib import Path

import numpy as np

from transfer_tf.core.checks import check_int
from transfer_tf.data.directory import list_images
from transfer_tf.data.images import check_image, read_image
from transfer_tf.data.splits import skipped_report
from transfer_tf.evaluation.predictions import class_probabilities
from transfer_tf.evaluation.unknown import UNKNOWN_LABEL, is_unknown
from transfer_tf.methods.loading import load
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.run_data import resize_policy, run_data

PREDICT_BATCH = 32


def predict_files(run, paths, *, top_k=3, verify=True, reject=True):
    """Predicts the classes of image files, or "unknown" below the model's threshold.

    Unreadable files are skipped and reported, not fatal.

    Args:
        run: str, path or `ImageClassifier`. A run folder (its `data.json`
            gives the resize policy) or a classifier (plain resize).
        paths: list of str or path. Image files, or folders searched
            recursively.
        top_k: int. How many classes to report per image. Defaults to `3`.
        verify: bool. Refuse a run folder whose files changed since it was
            saved (see `load`). Defaults to `True`.
        reject: bool. Mark an image `"unknown": true` when its top class
            probability is below the model's `unknown_threshold` (set by
            `train --calibrate` or `calibrate`); a model without one marks
            none. Defaults to `True`.

    Returns:
        `(predictions, skipped)`: a list of `{"path", "unknown", "top":
        [{"label", "score"}, ...]}` in file order (`top` holds the best
        guesses, also for an unknown image), and a list of `(path, reason)`.

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
    threshold = getattr(classifier, "unknown_threshold", None) if reject else None
    for start in range(0, len(good), PREDICT_BATCH):
        batch = good[start:start + PREDICT_BATCH]
        images = np.stack([read_image(p, classifier.image_size, resize) for p in batch])
        scores = class_probabilities(classifier, classifier.predict(images, verbose=0))
        for path, row in zip(batch, scores):
            order = np.argsort(-row, kind="stable")[:k]
            predictions.append({
                "path": str(path),
                "unknown": bool(is_unknown(row, threshold)),
                "top": [{"label": classifier.class_names[i], "score": float(row[i])} for i in order],
            })
    return predictions, skipped


def format_predictions(predictions, skipped):
    """One line per image: path, then labels with scores (after `unknown` below the threshold); then the
    skip report."""
    lines = []
    for p in predictions:
        guesses = ", ".join(f"{t['label']} {t['score']:.3f}" for t in p["top"])
        lines.append(f"{p['path']}: " + (f"{UNKNOWN_LABEL} (best guesses: {guesses})" if p["unknown"] else guesses))
    return "\n".join(lines + skipped_report(skipped))
