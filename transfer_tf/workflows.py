"""The jobs behind the command line, as functions: train, compare, adapt, pretrain, evaluate, predict, export.

`transfer-tf` maps its arguments to these and prints what they return;
notebooks and scripts can call them too. Each checks its settings before any
slow work starts.
"""

import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from transfer_tf import distribute
from transfer_tf.adaptation import AdaptSettings, adapt
from transfer_tf.backbones import get_backbone
from transfer_tf.classical import fit_classical
from transfer_tf.checks import check_choice, check_int, normalise_image_size
from transfer_tf.comparison import check_output as check_compare_output
from transfer_tf.comparison import compare
from transfer_tf.data.directory import from_directory, list_images, unlabelled_images
from transfer_tf.data.images import check_image, read_image
from transfer_tf.data.splits import all_held_out, skipped_report
from transfer_tf.evaluation import class_probabilities, evaluate
from transfer_tf.exporting import TFLiteConfig, export
from transfer_tf.lr_finder import find_lr
from transfer_tf.model import ImageClassifier
from transfer_tf.pretraining import pretrain
from transfer_tf.runs import load
from transfer_tf.report import write_report
from transfer_tf.run_data import resize_policy, run_data, run_splits, split_settings
from transfer_tf.saving import DATA_FILE, MODEL_FILE, write_metrics
from transfer_tf.seeding import seed_job
from transfer_tf.settings import DataSettings, FineTuneSettings, ModelSettings, fill, keywords_of
from transfer_tf.training import fine_tune

EVALUATION_SPLITS = ("all", "train", "validation", "test")
PREDICT_BATCH = 32
RUN_SETTINGS = {"model": ModelSettings, "data": DataSettings, "training": FineTuneSettings}
UNFINISHED_DIR = ".unfinished"  # a run's backup while it trains


@keywords_of(ModelSettings, DataSettings, FineTuneSettings)
def train_run(data_dir, out, *, model=None, data=None, training=None, overwrite=False, resume=False,
              strategy=None, verbose=1, **keywords):
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
        overwrite: bool. Whether an existing run at `out` (finished or not)
            may be replaced. Defaults to `False`.
        resume: bool. Continue the unfinished run at `out` (killed before it
            was saved), from its last completed epoch. Defaults to `False`.
        strategy: `tf.distribute.Strategy` or `None`. Trains the dense head
            and the fine-tuning under it (see `distribute`); a classical
            head is fitted by each process on its own. Under several
            workers, every worker runs this same call and only the chief
            writes `out`. Defaults to `None`.
        verbose: int. 0 silent, 1 progress bars, 2 a line per epoch.
            Defaults to `1` (`0` on workers other than the chief).
        **keywords: any field of the three settings classes, changing it.

    While training, `out/.unfinished/` backs the run up after every epoch;
    `out` gets its run files only when training ended, and the backup is
    removed once they are written.

    Returns:
        `(classifier, splits, result)`: the trained `ImageClassifier`, the
        `ImageSplits` and the `FineTuneResult`.

    Raises:
        FileExistsError: if `out` holds a run (finished, or unfinished
            without `resume`) and `overwrite` is False.
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
    seed_job(training.seed)
    out = Path(out)
    backup_dir = out / UNFINISHED_DIR
    if overwrite:
        shutil.rmtree(backup_dir, ignore_errors=True)
    elif (out / MODEL_FILE).exists():
        raise FileExistsError(
            f"{out} already holds a trained run. Choose another output folder or allow "
            "replacing it (--overwrite / overwrite=True)."
        )
    elif backup_dir.is_dir() and not resume:
        raise FileExistsError(
            f"{out} holds an unfinished run (stopped before it was saved). Continue it with --resume "
            "(resume=True), or start again with --overwrite (overwrite=True).")
    if resume and not backup_dir.is_dir():
        raise FileNotFoundError(f"{out} holds no unfinished run to resume. Received: resume=True")
    chief = distribute.is_chief(strategy)
    verbose = verbose if chief else 0
    distribute.barrier(strategy)  # every worker has checked `out` before the chief changes it
    if overwrite and chief:
        shutil.rmtree(backup_dir, ignore_errors=True)
    distribute.barrier(strategy)
    splits = read_folder(data_dir, data, size, verbose)
    dense = model.head == "dense"
    classifier = ImageClassifier.from_backbone(
        spec.name, class_names=splits.class_names, image_size=size, weights=model.weights,
        pooling=model.pooling, dropout=model.dropout, dtype=model.dtype, strategy=strategy if dense else None,
    )
    if dense:
        result = fine_tune(classifier, splits.train, splits.validation, settings=training,
                           verbose=verbose, backup_dir=backup_dir, strategy=strategy)
    else:
        classifier = fit_classical(classifier, splits.train, estimator=model.head, seed=training.seed,
                                   feature_cache_mode=training.feature_cache, verbose=bool(verbose))
        result = classifier.training_record
    if chief:
        classifier.save(out, overwrite=True, data_summary=splits.to_dict())
        write_report(out, splits, classifier=_local_copy(classifier, out, strategy), verbose=bool(verbose))
        shutil.rmtree(backup_dir, ignore_errors=True)
    return classifier, splits, result


def _local_copy(classifier, saved_at, strategy):
    """The classifier, or under several workers its saved copy outside the strategy (for the chief alone)."""
    return load(saved_at) if distribute.is_multi_worker(strategy) else classifier


def read_folder(data_dir, data, image_size, verbose):
    """A folder of class sub-folders read and split as `DataSettings` say."""
    return from_directory(
        data_dir, image_size=image_size, validation_split=data.validation_split,
        test_split=data.test_split, seed=data.seed, batch_size=data.batch_size, augment=data.augment,
        resize=data.resize, cache=data.cache, verbose=bool(verbose),
    )


@keywords_of(ModelSettings, DataSettings, FineTuneSettings)
def compare_run(data_dir, out, *, model=None, data=None, training=None, scratch_lr=1e-3,
                classical="logistic", overwrite=False, strategy=None, verbose=1, **keywords):
    """Reads a folder of images and runs `compare` on it, writing its table, JSON and plot.

    Args:
        data_dir: str or path. One sub-folder of images per class.
        out: str or path. The folder for `compare.md`, `compare.json` and
            `compare.png`.
        model, data, training: as in `train_run`.
        scratch_lr: float. Learning rate from scratch. Defaults to `1e-3`.
        classical: str or `None`. The classical row's estimator (see
            `compare`). Defaults to `"logistic"`.
        overwrite: bool. Defaults to `False`.
        strategy: `tf.distribute.Strategy` or `None`. As in `compare`.
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
    seed_job(data.seed)
    verbose = verbose if distribute.is_chief(strategy) else 0
    splits = read_folder(data_dir, data, size, verbose)
    if verbose:
        print("\nData:\n" + splits.summary())
    result = compare(splits, model=model.replace(backbone=spec.name), training=settings["training"],
                     scratch_lr=scratch_lr, classical=classical, seed=data.seed, out=out,
                     overwrite=overwrite, strategy=strategy, verbose=verbose)
    return result, splits


def adapt_run(source_run, source_dir, target_dir, out, *, method="adabn", labelled_target_dir=None,
              domain_weight=None, data=None, training=None, overwrite=False, strategy=None, verbose=1,
              **keywords):
    """Adapts a run folder's classifier to a target domain and writes the adapted run folder.

    Args:
        source_run: str or path. A run folder trained on the source domain
            (`"adabn"` changes only its BatchNorm statistics; `"dann"` and
            `"coral"` start from its weights and retrain its head and top
            blocks with the alignment loss).
        source_dir: str, path or `None`. The labelled source images, one
            sub-folder per class (`"adabn"` reads their images only, to map
            the target's statistics onto theirs; `None` there is plain
            AdaBN, right only if the run's statistics are the source's).
        target_dir: str or path. The target images: any folder. If its
            sub-folders are exactly the run's classes, the adapted run is
            evaluated on them (their labels are never trained on).
        out: str or path. The adapted run folder.
        method: str. `"adabn"`, `"dann"` or `"coral"`. Defaults to `"adabn"`.
        labelled_target_dir: str, path or `None`. A few labelled target
            images, one sub-folder per class; they join the label loss.
        domain_weight: float or `None`. Weight of the alignment loss; `None`
            for the method's default (DANN 0.1, CORAL 1.0; none for AdaBN).
            Defaults to `None`.
        data: `DataSettings` or `None`. How the folders are read.
        training: `FineTuneSettings` or `None`. Epochs, rates, blocks.
        overwrite: bool. Defaults to `False`.
        strategy: `tf.distribute.Strategy` or `None`. Adapts under it; under
            several workers only the chief writes `out` and evaluates.
            Defaults to `None`.
        verbose: int. Defaults to `1`.
        **keywords: any field of `DataSettings` or `FineTuneSettings`.

    Returns:
        `(classifier, result, metrics)`: the adapted classifier, its
        `FineTuneResult`, and its metrics on the target images (or `None`,
        also on workers other than the chief).
    """
    settings = fill({"data": DataSettings, "training": FineTuneSettings}, keywords,
                    {"data": data, "training": training}, caller="adapt_run")
    data, training = settings["data"], settings["training"]
    AdaptSettings(method=method, domain_weight=domain_weight)  # checks before any work
    if training.seed is None:
        training = training.replace(seed=data.seed)
    seed_job(training.seed)
    out = Path(out)
    if (out / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a trained run. Choose another folder or pass --overwrite.")
    chief = distribute.is_chief(strategy)
    verbose = verbose if chief else 0
    classifier = load(source_run, strategy=strategy)
    resize = resize_policy(run_data(source_run))
    read = dict(image_size=classifier.image_size, resize=resize, verbose=bool(verbose))
    target = unlabelled_images(target_dir, **read)
    source = None
    if source_dir is not None:
        source = from_directory(source_dir, validation_split=0.0, test_split=0.0, seed=data.seed,
                                batch_size=data.batch_size, **read)
        _check_classes(source.class_names, classifier, source_dir)
        source = source.train
    labelled = None
    if labelled_target_dir is not None:
        labelled = from_directory(labelled_target_dir, validation_split=0.0, test_split=0.0,
                                  seed=data.seed, batch_size=data.batch_size, **read)
        _check_classes(labelled.class_names, classifier, labelled_target_dir)
        labelled = labelled.train
    result = adapt(classifier, source, target.images, method=method, target_labelled=labelled,
                   domain_weight=domain_weight, settings=training.replace(batch_size=data.batch_size),
                   strategy=strategy, verbose=verbose)
    if not chief:
        return classifier, result, None
    evaluation = _labelled_folder(target_dir, classifier, resize)
    summary = evaluation.to_dict() if evaluation is not None else None
    classifier.save(out, overwrite=True, data_summary=summary)
    local = _local_copy(classifier, out, strategy)
    write_report(out, evaluation, classifier=local, verbose=bool(verbose))
    metrics = None if evaluation is None else evaluate(local, evaluation.validation)
    return classifier, result, metrics


def _check_classes(class_names, classifier, folder):
    if list(class_names) != list(classifier.class_names):
        raise ValueError(f"The class folders of {folder} {list(class_names)} differ from the run's "
                         f"classes {classifier.class_names}.")


def _labelled_folder(folder, classifier, resize):
    """The folder as labelled splits (all of it held out) if its sub-folders are the run's classes."""
    root = Path(folder)
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if names != sorted(classifier.class_names) or names != list(classifier.class_names):
        return None
    return all_held_out(from_directory(root, image_size=classifier.image_size, validation_split=0.0,
                                       test_split=0.0, resize=resize, verbose=False))


def pretrain_run(data_dir, out, *, method="autoencoder", epochs=10, learning_rate=1e-3, mask_ratio=0.5,
                 model=None, data=None, overwrite=False, strategy=None, verbose=1, **keywords):
    """Pretrains a base on every image under a folder and writes a folder `--weights` takes.

    Args:
        data_dir: str or path. Images in any folders; labels are ignored.
        out: str or path. The folder to write.
        method: str. `"autoencoder"` or `"masked"`.
        epochs, learning_rate, mask_ratio: as in `pretraining.pretrain`.
        model: `ModelSettings` or `None`: backbone, starting weights (e.g.
            `None` or `"imagenet"`), image size.
        data: `DataSettings` or `None`: batch size, seed, resize.
        overwrite: bool. Defaults to `False`.
        strategy: `tf.distribute.Strategy` or `None`. Pretrains under it;
            under several workers only the chief writes `out`. Defaults to
            `None`.
        verbose: int. Defaults to `1`.
        **keywords: fields of `ModelSettings` or `DataSettings`.

    Returns:
        `PretrainResult`.
    """
    settings = fill({"model": ModelSettings, "data": DataSettings}, keywords,
                    {"model": model, "data": data}, caller="pretrain_run")
    model, data = settings["model"], settings["data"]
    spec = get_backbone(model.backbone)
    size = normalise_image_size(model.image_size or spec.default_size, spec)
    out = Path(out)
    if (out / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a model. Choose another folder or pass --overwrite.")
    seed_job(data.seed)
    chief = distribute.is_chief(strategy)
    verbose = verbose if chief else 0
    images = unlabelled_images(data_dir, image_size=size, resize=data.resize, verbose=bool(verbose))
    result = pretrain(spec.name, images.images, method=method, epochs=epochs, learning_rate=learning_rate,
                      mask_ratio=mask_ratio, batch_size=data.batch_size, image_size=size,
                      weights=model.weights, seed=data.seed, strategy=strategy, verbose=verbose)
    if chief:
        result.save(out, overwrite=overwrite)
    return result


@keywords_of(ModelSettings, DataSettings)
def lr_find_run(source, *, phase="head", unfreeze_blocks=1, steps=100, plot=None, model=None, data=None,
                verbose=1, **keywords):
    """Sweeps the learning rate of a phase on a run's data or a folder of images (see `find_lr`).

    Args:
        source: str or path. A run folder (its classifier, and its data
            re-read and split as in training) or a folder of class
            sub-folders (a classifier is built from `model`).
        phase: str. `"head"` or `"fine_tune"`. Defaults to `"head"`.
        unfreeze_blocks: int or `"all"`. For `"fine_tune"`. Defaults to `1`.
        steps: int. At most this many batches. Defaults to `100`.
        plot: str, path or `None`. Where to write the sweep's plot (PNG).
            Defaults to `None`.
        model: `ModelSettings` or `None`. For a folder of images.
        data: `DataSettings` or `None`. For a folder of images: how it is
            read and split (the sweep uses the training part); its seed
            seeds the sweep.
        verbose: int. Defaults to `1`.
        **keywords: fields of `ModelSettings` or `DataSettings`.

    Returns:
        `LRFinderResult`.

    Raises:
        FileNotFoundError: if `source` does not exist, or a run's recorded
            data folder no longer does.
        ValueError: for a run whose data cannot be read again (trained on
            arrays), or bad settings.
    """
    settings = fill({"model": ModelSettings, "data": DataSettings}, keywords,
                    {"model": model, "data": data}, caller="lr_find_run")
    model, data = settings["model"], settings["data"]
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"No run folder or image folder at {source}. Received: source={str(source)!r}")
    seed_job(data.seed)
    if (source / MODEL_FILE).is_file():
        classifier = load(source)
        splits = run_splits(source, batch_size=data.batch_size, verbose=bool(verbose))
        if splits is None:
            raise ValueError(f"{source} was trained on data that cannot be read again (arrays or TFDS); "
                             "run lr-find on a folder of images instead.")
    else:
        spec = get_backbone(model.backbone)
        size = normalise_image_size(model.image_size or spec.default_size, spec)
        splits = read_folder(source, data, size, verbose)
        classifier = ImageClassifier.from_backbone(
            spec.name, class_names=splits.class_names, image_size=size, weights=model.weights,
            pooling=model.pooling, dropout=model.dropout, dtype=model.dtype)
    result = find_lr(classifier, splits.train, phase=phase, unfreeze_blocks=unfreeze_blocks, steps=steps,
                     seed=data.seed, verbose=bool(verbose))
    if plot is not None:
        result.plot(path=plot)
    return result


def format_training(result):
    """One line per phase: epochs, time, and its best validation (or training) figure."""
    lines = []
    for phase in result.phases:
        key = next((k for k in ("val_accuracy", "accuracy", "loss") if k in phase.best), None)
        value = phase.best.get(key)
        shown = "n/a" if value is None else (f"{value:.4f}" if key == "loss" else f"{value:.1%}")
        name = "n/a" if key is None else key.replace("val_", "validation ")
        lines.append(f"  {phase.name:<12} {phase.epochs:>3} epochs  {phase.seconds:>7.1f} s  best {name}: {shown}")
    return "\n".join(lines)


def evaluate_run(run, data_dir, *, split="all", batch_size=32, verify=True, verbose=1):
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
        verify: bool. Refuse a run whose files changed since it was saved
            (see `load`). Defaults to `True`.
        verbose: int. Defaults to `1`.

    Returns:
        dict: the metrics of `evaluation.evaluate`, with `data_dir` and
        `split`.

    Raises:
        ValueError: for a split the run did not make, or class folders the
            run does not know.
    """
    check_choice("split", split, EVALUATION_SPLITS)
    classifier = load(run, verify=verify)
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
