"""`transfer-tf lr-find`: a learning-rate sweep on a run's data or a folder."""

from pathlib import Path

from transfer_tf.backbones.registry import get_backbone
from transfer_tf.cli.jobs.common import read_folder
from transfer_tf.core.checks import normalise_image_size
from transfer_tf.core.seeding import seed_job
from transfer_tf.core.settings_base import fill, keywords_of
from transfer_tf.methods.loading import load
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.run_data import run_splits
from transfer_tf.model.saving import MODEL_FILE
from transfer_tf.training.lr_finder import find_lr
from transfer_tf.training.settings import DataSettings, ModelSettings


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
