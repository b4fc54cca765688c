"""`transfer-tf train`: a run folder from a folder of images."""

import shutil
from pathlib import Path

from transfer_tf.backbones.registry import get_backbone
from transfer_tf.cli.jobs.common import RUN_SETTINGS, UNFINISHED_DIR, local_copy, read_folder
from transfer_tf.core.checks import normalise_image_size
from transfer_tf.core.integrity import write_json_atomically
from transfer_tf.core.seeding import seed_job
from transfer_tf.core.settings_base import fill, keywords_of
from transfer_tf.evaluation.calibration import calibrate as calibrate_classifier
from transfer_tf.evaluation.calibration import calibration_lines
from transfer_tf.evaluation.report import write_report
from transfer_tf.evaluation.unknown import DEFAULT_KNOWN_KEPT, check_known_kept
from transfer_tf.methods.classical import fit_classical
from transfer_tf.model import distribute
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.saving import CALIBRATION_FILE, MODEL_FILE, read_json
from transfer_tf.training.settings import DataSettings, FineTuneSettings, ModelSettings
from transfer_tf.training.two_phase import fine_tune


@keywords_of(ModelSettings, DataSettings, FineTuneSettings)
def train_run(data_dir, out, *, model=None, data=None, training=None, overwrite=False, resume=False,
              strategy=None, calibrate=False, known_kept=DEFAULT_KNOWN_KEPT, verbose=1, **keywords):
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
        calibrate: bool. Once trained, fit the temperature of the
            probabilities and the "unknown" threshold on the validation
            images (`ttf.calibrate`), write `calibration.json` and report
            it. Needs a dense head and a validation split. Defaults to
            `False`.
        known_kept: float in (0, 1] or `None`. With `calibrate`: the share of
            validation images the "unknown" threshold keeps; `None` chooses
            no threshold. Defaults to `0.95`.
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
        ValueError: for an unknown backbone or option, a bad image size,
            unusable data, or `calibrate` without a dense head or a
            validation split.
        TypeError: for an unknown keyword.
    """
    settings = fill(RUN_SETTINGS, keywords, {"model": model, "data": data, "training": training},
                    caller="train_run")
    model, data, training = settings["model"], settings["data"], settings["training"]
    _check_calibration(calibrate, known_kept, model)
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
    if calibrate and splits.validation is None:
        raise ValueError(f"--calibrate fits on validation images, and {data_dir} gave none. Set "
                         f"--validation-split above 0 or add a validation/ folder. Received: "
                         f"validation_split={data.validation_split}")
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
    calibration = None
    if calibrate:
        if verbose:
            print("Calibrating on the validation images ...")
        calibration = calibrate_classifier(classifier, splits.validation, known_kept=known_kept)
    if chief:
        classifier.save(out, overwrite=True, data_summary=splits.to_dict())  # removes an earlier calibration.json
        if calibration is not None:
            write_json_atomically(out / CALIBRATION_FILE, calibration.to_dict())
        write_report(out, splits, classifier=local_copy(classifier, out, strategy),
                     validation_outputs=result.validation_outputs, verbose=bool(verbose))
        shutil.rmtree(backup_dir, ignore_errors=True)
    return classifier, splits, result


def format_calibration(run):
    """The calibration a run folder records (`calibration.json`), in a few lines."""
    return "Calibration:\n" + "\n".join(
        "  " + line for line in calibration_lines(read_json(Path(run) / CALIBRATION_FILE)))


def _check_calibration(calibrate, known_kept, model):
    if not calibrate:
        return
    if model.head != "dense":
        raise ValueError("--calibrate scales the logits of a dense head; a classical head has none. "
                         f"Received: head={model.head!r}")
    if known_kept is not None:
        check_known_kept(known_kept)
