"""The command-line jobs as functions: train a run folder, evaluate it, predict.

`transfer-tf train/evaluate/predict` call these; notebooks and scripts can
too. Each checks its arguments before any slow work starts.
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from transfer_tf.backbones import get_backbone
from transfer_tf.data.directory import from_directory, list_images
from transfer_tf.data.images import check_image, read_image, validate_resize
from transfer_tf.data.splits import skipped_report
from transfer_tf.evaluation import class_probabilities, evaluate
from transfer_tf.model import ImageClassifier
from transfer_tf.precision import validate_dtype
from transfer_tf.report import write_report
from transfer_tf.saving import CONFIG_FILE, DATA_FILE, METRICS_FILE, MODEL_FILE, load, read_json, save
from transfer_tf.training import fine_tune
from transfer_tf.weights import normalise_image_size

EVALUATION_SPLITS = ("all", "train", "validation", "test")
PREDICT_BATCH = 32


def train_run(
    data_dir,
    out,
    *,
    backbone="resnet50",
    weights="imagenet",
    image_size=None,
    head_epochs=5,
    fine_tune_epochs=5,
    unfreeze_blocks=1,
    head_lr=1e-3,
    fine_tune_lr=None,
    augment="none",
    resize="stretch",
    batch_size=32,
    validation_split=0.2,
    test_split=0.0,
    class_weight=None,
    early_stopping_patience=None,
    pooling="avg",
    dropout=0.2,
    dtype=None,
    cache=False,
    feature_cache="auto",
    seed=0,
    overwrite=False,
    verbose=1,
):
    """Trains a classifier on a folder of images and writes its run folder.

    The run folder gets the model, its labels, config, history and data
    summary (see `save`), then the plots, held-out metrics and `report.md`
    (see `report.write_report`).

    Args:
        data_dir: str or path. One sub-folder of images per class.
        out: str or path. The run folder to write.
        backbone, weights, image_size, pooling, dropout, dtype: as in
            `ImageClassifier.from_backbone`; `image_size` defaults to the
            backbone's own.
        head_epochs, fine_tune_epochs, unfreeze_blocks, head_lr,
            fine_tune_lr, early_stopping_patience, feature_cache, seed: as in
            `fine_tune`.
        augment, resize, batch_size, validation_split, test_split, cache: as
            in `data.from_directory`.
        class_weight: `"balanced"` or `None`. Balanced weights come from the
            training counts. Defaults to `None`.
        overwrite: bool. Whether an existing run at `out` may be replaced.
            Defaults to `False`.
        verbose: int. 0 silent, 1 progress bars, 2 a line per epoch.
            Defaults to `1`.

    Returns:
        `(classifier, splits, result)`: the trained `ImageClassifier`, the
        `ImageSplits` and the `FineTuneResult`.

    Raises:
        FileExistsError: if `out` holds a run and `overwrite` is False.
        ValueError: for an unknown backbone or option, a bad image size, or
            unusable data.
    """
    spec = get_backbone(backbone)
    size = normalise_image_size(spec.default_size if image_size is None else image_size, spec)
    validate_resize(resize)
    validate_dtype(dtype)
    if class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be 'balanced' or None. Received: class_weight={class_weight!r}")
    out = Path(out)
    if (out / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(
            f"{out} already holds a trained run. Choose another output folder or allow "
            "replacing it (--overwrite / overwrite=True)."
        )
    splits = from_directory(
        data_dir, image_size=size, validation_split=validation_split, test_split=test_split,
        seed=seed, batch_size=batch_size, augment=augment, resize=resize, cache=cache,
        verbose=bool(verbose),
    )
    classifier = ImageClassifier.from_backbone(
        spec.name, class_names=splits.class_names, image_size=size, weights=weights,
        pooling=pooling, dropout=dropout, dtype=dtype,
    )
    result = fine_tune(
        classifier, splits.train, splits.validation, head_epochs=head_epochs,
        fine_tune_epochs=fine_tune_epochs, unfreeze_blocks=unfreeze_blocks, head_lr=head_lr,
        fine_tune_lr=fine_tune_lr, early_stopping_patience=early_stopping_patience,
        class_weight=splits.class_weight() if class_weight == "balanced" else None,
        feature_cache=feature_cache, seed=seed, verbose=verbose,
    )
    save(classifier, out, overwrite=True, data_summary=splits.to_dict())
    write_report(out, splits, classifier=classifier, verbose=bool(verbose))
    return classifier, splits, result


def format_training(result):
    """One line per phase: epochs, time, best validation (or training) accuracy."""
    lines = []
    for phase in result.phases:
        key = "val_accuracy" if "val_accuracy" in phase.best else "accuracy"
        best = phase.best.get(key)
        what = "n/a" if best is None else f"{best:.1%}"
        lines.append(
            f"  {phase.name:<10} {phase.epochs:>3} epochs  {phase.seconds:>7.1f} s  "
            f"best {key.replace('val_', 'validation ')}: {what}"
        )
    return "\n".join(lines)


def evaluate_run(run, data_dir, *, split="all", batch_size=32, verbose=1):
    """Evaluates a run folder on a folder of images and writes `RUN/metrics.json`.

    Args:
        run: str or path. A run folder from `train_run` or `clf.save`.
        data_dir: str or path. One sub-folder per class; every folder name
            must be one of the run's classes.
        split: str. `"all"` evaluates every image in `data_dir`;
            `"train"`, `"validation"` or `"test"` re-creates the run's own
            split of `data_dir` (same seed and fractions) and evaluates that
            part. Defaults to `"all"`.
        batch_size: int. Defaults to `32`.
        verbose: int. Defaults to `1`.

    Returns:
        dict: the metrics of `evaluation.evaluate`, with `data_dir` and
        `split`.

    Raises:
        ValueError: for a split the run did not make, or class folders the
            run does not know.
    """
    if split not in EVALUATION_SPLITS:
        raise ValueError(f"split must be one of {', '.join(EVALUATION_SPLITS)}. Received: split={split!r}")
    classifier = load(run)
    data = _run_data(run)
    split_settings = dict(validation_split=0.0, test_split=0.0, seed=0)
    if split != "all":
        if data is None:
            raise ValueError(
                f"{run} does not record how its data was split ({DATA_FILE} is missing); "
                f"evaluate with split='all' on a held-out folder. Received: split={split!r}"
            )
        split_settings = _split_settings(data)
    splits = from_directory(
        data_dir, image_size=classifier.image_size, batch_size=batch_size,
        resize=_resize_policy(data), verbose=bool(verbose),
        **split_settings,
    )
    dataset = splits.train if split == "all" else getattr(splits, split)
    if dataset is None:
        raise ValueError(f"The {split} split of {data_dir} holds no images.")
    unknown = sorted(set(splits.class_names) - set(classifier.class_names))
    if unknown:
        raise ValueError(
            f"{data_dir} has class folders the model does not know: {unknown}. Its classes "
            f"are {classifier.class_names}."
        )
    index = np.array([classifier.class_names.index(n) for n in splits.class_names], np.int32)
    metrics = evaluate(classifier, dataset.map(lambda x, y: (x, tf.gather(index, y))))
    metrics = {"data_dir": str(data_dir), "split": split, **metrics}
    Path(run, METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def predict_files(run, paths, *, top_k=3):
    """Predicts the classes of image files.

    Unreadable files are skipped and reported, not fatal.

    Args:
        run: str, path or `ImageClassifier`. A run folder (its `data.json`
            gives the resize policy) or a classifier (plain resize).
        paths: list of str or path. Image files, or folders searched
            recursively.
        top_k: int. How many classes to report per image. Defaults to `3`.

    Returns:
        `(predictions, skipped)`: a list of `{"path", "top": [{"label",
        "score"}, ...]}` in file order, and a list of `(path, reason)`.

    Raises:
        FileNotFoundError: for a path that does not exist.
        ValueError: for `top_k < 1` or no image files at all.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1. Received: top_k={top_k!r}")
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"No such file or folder: {', '.join(missing)}")
    if isinstance(run, ImageClassifier):
        classifier, resize = run, "stretch"
    else:
        classifier = load(run)
        resize = _resize_policy(_run_data(run))
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


def run_splits(run, data_dir=None, *, batch_size=32, verbose=True):
    """Re-reads the data a run was trained on, split as it was split then.

    Args:
        run: str or path. A run folder.
        data_dir: str, path or `None`. A folder of class sub-folders to use
            instead of the run's recorded source. Defaults to `None`.
        batch_size: int. Defaults to `32`.
        verbose: bool. Defaults to `True`.

    Returns:
        `ImageSplits`, or `None` when the run records no source that can be
        read again (arrays, TFDS) and no `data_dir` is given.

    Raises:
        FileNotFoundError: if the recorded data folder no longer exists.
    """
    from transfer_tf.data.sources import elpv

    data = _run_data(run)
    source = (data or {}).get("source") or {}
    image_size = tuple(read_json(Path(run) / CONFIG_FILE)["image_size"])
    settings = dict(
        image_size=image_size, resize=_resize_policy(data), batch_size=batch_size,
        verbose=verbose, **(_split_settings(data) if source else {}),
    )
    if data_dir is None and source.get("kind") == "elpv":
        return elpv(task=source["task"], module_type=source["module_type"], **settings)
    if data_dir is None and source.get("kind") == "directory":
        data_dir = source["path"]
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(
                f"{run} was trained on {data_dir}, which no longer exists. Pass the images "
                "with --data DIR (data=... in Python)."
            )
    return None if data_dir is None else from_directory(data_dir, **settings)


def _split_settings(data):
    """The split fractions and seed a run's data was split with."""
    return {k: data["source"][k] for k in ("validation_split", "test_split", "seed")}


def _resize_policy(data):
    """The resize policy a run was trained with (runs without `data.json`: stretch)."""
    return ((data or {}).get("source") or {}).get("resize", "stretch")


def _run_data(run):
    """The run's `data.json`, or `None` when it has none."""
    path = Path(run) / DATA_FILE
    return read_json(path) if path.is_file() else None
