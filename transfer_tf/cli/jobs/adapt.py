"""`transfer-tf adapt`: a run adapted to another domain."""

from pathlib import Path

from transfer_tf.cli.jobs.common import local_copy
from transfer_tf.core.seeding import seed_job
from transfer_tf.core.settings_base import fill
from transfer_tf.data.directory import from_directory, unlabelled_images, visible_dirs
from transfer_tf.data.splits import all_held_out
from transfer_tf.evaluation.predictions import evaluate
from transfer_tf.evaluation.report import write_report
from transfer_tf.methods.adaptation import AdaptSettings, adapt
from transfer_tf.methods.loading import load
from transfer_tf.model import distribute
from transfer_tf.model.run_data import resize_policy, run_data
from transfer_tf.model.saving import MODEL_FILE
from transfer_tf.training.settings import DataSettings, FineTuneSettings


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
    local = local_copy(classifier, out, strategy)
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
    names = [d.name for d in visible_dirs(root)]
    if names != sorted(classifier.class_names) or names != list(classifier.class_names):
        return None
    return all_held_out(from_directory(root, image_size=classifier.image_size, validation_split=0.0,
                                       test_split=0.0, resize=resize, verbose=False))
