"""The jobs behind the command line, as functions: train, compare, evaluate, predict, export.

`transfer-tf` maps its arguments to these and prints what they return;
notebooks and scripts can call them too. Each checks its settings before any
slow work starts.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from transfer_tf.backbones import get_backbone
from transfer_tf.checks import check_choice, check_int, normalise_image_size
from transfer_tf.compare import check_output as check_compare_output
from transfer_tf.compare import compare
from transfer_tf.data.directory import from_directory, list_images
from transfer_tf.data.images import check_image, read_image
from transfer_tf.data.splits import skipped_report
from transfer_tf.evaluation import class_probabilities, evaluate
from transfer_tf.exporting import TFLiteConfig, export
from transfer_tf.model import ImageClassifier, load
from transfer_tf.report import write_report
from transfer_tf.run_data import resize_policy, run_data, run_splits, split_settings
from transfer_tf.saving import DATA_FILE, MODEL_FILE, save, write_metrics
from transfer_tf.settings import DataSettings, FineTuneSettings, ModelSettings, fill, keywords_of
from transfer_tf.training import fine_tune

EVALUATION_SPLITS = ("all", "train", "validation", "test")
PREDICT_BATCH = 32
RUN_SETTINGS = {"model": ModelSettings, "data": DataSettings, "training": FineTuneSettings}


@keywords_of(ModelSettings, DataSettings, FineTuneSettings)
def train_run(data_dir, out, *, model=None, data=None, training=None, overwrite=False, verbose=1,
              **keywords):
    """Trains a classifier on a folder of images and writes its run folder.

    The run folder gets the model, its labels, config, history and data
    summary (see `saving.save`), then the plots, held-out metrics and
    `report.md` (see `report.write_report`).

    Args:
        data_dir: str or path. One sub-folder of images per class.
        out: str or path. The run folder to write.
        model: `ModelSettings` or `None`. Backbone, weights, image size
            (default: the backbone's), head, dtype.
        data: `DataSettings` or `None`. How the folder is read and split;
            its `seed` also seeds training (unless `training.seed` is set).
        training: `FineTuneSettings` or `None`. The two phases.
        overwrite: bool. Whether an existing run at `out` may be replaced.
            Defaults to `False`.
        verbose: int. 0 silent, 1 progress bars, 2 a line per epoch.
            Defaults to `1`.
        **keywords: any field of the three settings classes, changing it.

    Returns:
        `(classifier, splits, result)`: the trained `ImageClassifier`, the
        `ImageSplits` and the `FineTuneResult`.

    Raises:
        FileExistsError: if `out` holds a run and `overwrite` is False.
        ValueError: for an unknown backbone or option, a bad image size, or
            unusable data.
        TypeError: for an unknown keyword.
    """
    settings = fill(RUN_SETTINGS, keywords, {"model": model, "data": data, "training": training},
                    caller="train_run")
    model, data, training = settings["model"], settings["data"], settings["training"]
    if training.seed is None:
        training = training.replace(seed=data.seed)
    spec = get_backbone(model.backbone)
    size = normalise_image_size(spec.default_size if model.image_size is None else model.image_size, spec)
    out = Path(out)
    if (out / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(
            f"{out} already holds a trained run. Choose another output folder or allow "
            "replacing it (--overwrite / overwrite=True)."
        )
    splits = read_folder(data_dir, data, size, verbose)
    classifier = ImageClassifier.from_backbone(
        spec.name, class_names=splits.class_names, image_size=size, weights=model.weights,
        pooling=model.pooling, dropout=model.dropout, dtype=model.dtype,
    )
    result = fine_tune(classifier, splits.train, splits.validation, settings=training, verbose=verbose)
    save(classifier, out, overwrite=True, data_summary=splits.to_dict())
    write_report(out, splits, classifier=classifier, verbose=bool(verbose))
    return classifier, splits, result


def read_folder(data_dir, data, image_size, verbose):
    """A folder of class sub-folders read and split as `DataSettings` say."""
    return from_directory(
        data_dir, image_size=image_size, validation_split=data.validation_split,
        test_split=data.test_split, seed=data.seed, batch_size=data.batch_size, augment=data.augment,
        resize=data.resize, cache=data.cache, verbose=bool(verbose),
    )


@keywords_of(ModelSettings, DataSettings, FineTuneSettings)
def compare_run(data_dir, out, *, model=None, data=None, training=None, scratch_lr=1e-3,
                overwrite=False, verbose=1, **keywords):
    """Reads a folder of images and runs `compare` on it, writing its table, JSON and plot.

    Args:
        data_dir: str or path. One sub-folder of images per class.
        out: str or path. The folder for `compare.md`, `compare.json` and
            `compare.png`.
        model, data, training: as in `train_run`.
        scratch_lr: float. Learning rate from scratch. Defaults to `1e-3`.
        overwrite: bool. Defaults to `False`.
        verbose: int. Defaults to `1`.
        **keywords: any field of the three settings classes.

    Returns:
        `(ComparisonResult, ImageSplits)`.

    Raises:
        FileExistsError: if `out` holds a comparison and `overwrite` is False
            (checked before any image is read).
        ValueError: for an unknown backbone or bad settings.
    """
    settings = fill(RUN_SETTINGS, keywords, {"model": model, "data": data, "training": training},
                    caller="compare_run")
    model, data = settings["model"], settings["data"]
    spec = get_backbone(model.backbone)
    size = normalise_image_size(model.image_size or spec.default_size, spec)
    check_compare_output(out, overwrite)  # before the images are read
    splits = read_folder(data_dir, data, size, verbose)
    if verbose:
        print("\nData:\n" + splits.summary())
    result = compare(splits, model=model.replace(backbone=spec.name), training=settings["training"],
                     scratch_lr=scratch_lr, seed=data.seed, out=out, overwrite=overwrite,
                     verbose=verbose)
    return result, splits


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
    check_choice("split", split, EVALUATION_SPLITS)
    classifier = load(run)
    data = run_data(run)
    settings = dict(validation_split=0.0, test_split=0.0, seed=0)
    if split != "all":
        if data is None:
            raise ValueError(
                f"{run} does not record how its data was split ({DATA_FILE} is missing); "
                f"evaluate with split='all' on a held-out folder. Received: split={split!r}"
            )
        settings = split_settings(data)
    splits = from_directory(
        data_dir, image_size=classifier.image_size, batch_size=batch_size,
        resize=resize_policy(data), verbose=bool(verbose), **settings,
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
    write_metrics(run, metrics)
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
    check_int("top_k", top_k, minimum=1)
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"No such file or folder: {', '.join(missing)}")
    if isinstance(run, ImageClassifier):
        classifier, resize = run, "stretch"
    else:
        classifier = load(run)
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


def export_run(run, out=None, *, precisions, integer_io=False, calibration_images=None, data_dir=None,
               verbose=1, **options):
    """Exports a run folder (see `exporting.export`), its int8 options given as flags.

    Args:
        run: str or path. A run folder.
        out: str, path or `None`. Defaults to `RUN/export`.
        precisions: list of precision names (`"dynamic-range"` accepted).
        integer_io: bool. The int8 model takes and returns uint8.
        calibration_images: int or `None`. Training images that calibrate
            int8 (default: 300).
        data_dir: str, path or `None`. Images to re-read instead of the
            run's own data, split as the run was.
        verbose: int. Defaults to `1`.
        **options: the other keywords of `export`.

    Returns:
        `ExportResult`.

    Raises:
        ValueError: for int8 options without int8 among the precisions.
    """
    configs = [TFLiteConfig.from_name(name) for name in dict.fromkeys(precisions)]
    int8_options = {"integer_io": integer_io}
    if calibration_images is not None:
        int8_options["num_calibration_images"] = calibration_images
    if integer_io or calibration_images is not None:
        if not any(c.precision == "int8" for c in configs):
            raise ValueError("--integer-io and --calibration-images apply to int8; add int8 to --precision")
        configs = [TFLiteConfig.int8(**int8_options) if c.precision == "int8" else c for c in configs]
    data = run_splits(run, data_dir, verbose=bool(verbose)) if data_dir else None
    return export(run, out, precisions=configs, data=data, verbose=verbose, **options)
