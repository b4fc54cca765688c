"""`transfer-tf compare`: transfer against training from scratch on a folder."""



from transfer_tf.backbones.registry import get_backbone
from transfer_tf.cli.jobs.common import RUN_SETTINGS, read_folder
from transfer_tf.core.checks import normalise_image_size
from transfer_tf.core.seeding import seed_job
from transfer_tf.core.settings_base import fill, keywords_of
from transfer_tf.evaluation.comparison import check_output as check_compare_output
from transfer_tf.evaluation.comparison import compare
from transfer_tf.model import distribute
from transfer_tf.training.settings import DataSettings, FineTuneSettings, ModelSettings


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
