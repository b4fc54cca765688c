"""`transfer-tf pretrain`: a base pretrained on unlabelled images."""

from pathlib import Path

from transfer_tf.backbones.registry import get_backbone
from transfer_tf.core.checks import normalise_image_size
from transfer_tf.core.seeding import seed_job
from transfer_tf.core.settings_base import fill
from transfer_tf.data.directory import unlabelled_images
from transfer_tf.methods.pretraining import pretrain
from transfer_tf.model import distribute
from transfer_tf.model.saving import MODEL_FILE
from transfer_tf.training.settings import DataSettings, ModelSettings


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
