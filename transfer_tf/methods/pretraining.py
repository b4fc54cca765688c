"""Pretraining a base on unlabelled images of the user's own domain.

Many users have thousands of unlabelled images and a few hundred labelled
ones. Pretraining the base on the unlabelled ones, from random weights or
continuing from ImageNet's, gives a weights source for
`ImageClassifier.from_backbone(..., weights=FOLDER)` like any other.

Two objectives, one call:

- `"autoencoder"`: the base is the encoder, a light convolutional decoder
  (nearest upsampling and 3 x 3 convolutions, 2x per step back to the input
  size) reconstructs the image; mean squared error on every pixel.
- `"masked"`: masked-image modelling (SimMIM-style, Xie et al. 2022, made
  for convolutional and transformer encoders alike): square patches of the
  input are replaced by grey, and the same decoder reconstructs the image;
  the loss counts the masked pixels only, so the encoder must infer what it
  cannot see from its context. Chosen over SimCLR-style contrastive
  learning because it needs no large batches of negatives (SimCLR's quality
  depends on batches of thousands, out of reach on a CPU), one view per
  image instead of two, and no augmentation policy to tune per domain.

BatchNormalization trains in training mode with momentum 0.9 (the 0.999 of
MobileNet and EfficientNet would leave the statistics near their start), so
the pretrained base's statistics are its domain's.
"""

import dataclasses
import math
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from transfer_tf.core.checks import check_choice, check_int, check_number
from transfer_tf.core.choices import PRETRAINING_METHODS
from transfer_tf.core.seeding import seed_job
from transfer_tf.core.staging import staged_folder
from transfer_tf.data.inputs import unlabelled_data
from transfer_tf.data.pipeline import recipe_of
from transfer_tf.model import distribute
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.freezing import all_layers, is_batchnorm
from transfer_tf.model.records import FineTuneResult
from transfer_tf.model.saving import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, package_versions, write_json
from transfer_tf.training.phases import FitOptions, Phase, run_phase

METHODS = PRETRAINING_METHODS


class Reconstruction(keras.Model):
    """Encoder (the base) + decoder, trained to reconstruct images in [0, 1].

    Args:
        preprocessor: the classifier's `ImagePreprocessing`.
        base: the base to pretrain.
        image_size: `(height, width)`.
        mask_ratio: float. The fraction of patches hidden (0: autoencoder).
        patch_size: int. Side of a hidden square, in pixels.
    """

    def __init__(self, preprocessor, base, image_size, *, mask_ratio=0.0, patch_size=8, **kwargs):
        super().__init__(**kwargs)
        self.preprocessor = preprocessor
        self.base = base
        self.image_size = tuple(image_size)
        self.mask_ratio = mask_ratio
        self.patch_size = patch_size
        self.decoder = decoder(base.output.shape[1:], self.image_size)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, images, training=None):
        return self.decoder(self.base(self.preprocessor(images), training=training), training=training)

    def _mask(self, images):
        """Pixels hidden, 1 in hidden patches: `(batch, height, width, 1)`."""
        height, width = self.image_size
        cells = (math.ceil(height / self.patch_size), math.ceil(width / self.patch_size))
        hidden = tf.cast(tf.random.uniform((tf.shape(images)[0], *cells, 1)) < self.mask_ratio, tf.float32)
        pixels = tf.repeat(tf.repeat(hidden, self.patch_size, axis=1), self.patch_size, axis=2)
        return pixels[:, :height, :width, :]

    def _loss(self, images, training):
        images = tf.cast(images, tf.float32)
        target = images / 255.0
        if self.mask_ratio > 0:
            mask = self._mask(images)
            inputs = images * (1.0 - mask) + 127.5 * mask
            weights = mask
        else:
            inputs, weights = images, tf.ones_like(images[..., :1])
        error = ops.square(self(inputs, training=training) - target) * weights
        return ops.sum(error) / (ops.sum(weights) * 3.0 + 1e-6)

    def train_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            loss = self._loss(images, training=True)
            share = distribute.replica_share(loss)  # gradients are summed over replicas
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(share, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        self.loss_tracker.update_state(self._loss(images, training=False))
        return {"loss": self.loss_tracker.result()}


def decoder(feature_shape, image_size, widths=(256, 128, 64, 32, 16)):
    """A light decoder: 2x nearest upsampling + 3 x 3 convolution per step, to `image_size` in [0, 1]."""
    features = keras.Input(tuple(feature_shape))
    x = features
    height = feature_shape[0]
    for step in range(max(int(math.ceil(math.log2(image_size[0] / height))), 0)):
        x = keras.layers.UpSampling2D(2)(x)
        x = keras.layers.Conv2D(widths[min(step, len(widths) - 1)], 3, padding="same", activation="relu")(x)
    x = keras.layers.Resizing(*image_size)(x) if tuple(x.shape[1:3]) != tuple(image_size) else x
    outputs = keras.layers.Conv2D(3, 1, activation="sigmoid")(x)
    return keras.Model(features, outputs, name="decoder")


@dataclasses.dataclass
class PretrainResult:
    """What `pretrain` did: the pretrained base and its record.

    Attributes:
        base: `keras.Model`. The pretrained base.
        record: `FineTuneResult`. One phase, the method's; its history has
            the reconstruction loss per epoch.
        backbone: str or `None`. The base's registry name.
        image_size: tuple.
    """

    base: object
    record: object
    backbone: str
    image_size: tuple

    def save(self, directory, *, overwrite=False):
        """Writes a folder that `weights=` (and `--weights`) take: the base, its record.

        Raises:
            FileExistsError: if it holds a model and `overwrite` is False.
        """
        directory = Path(directory)
        if (directory / MODEL_FILE).exists() and not overwrite:
            raise FileExistsError(f"{directory} already holds a model; pass overwrite=True (--overwrite).")
        with staged_folder(directory, last=CONFIG_FILE) as staging:
            self.base.save(staging / MODEL_FILE)
            write_json(staging / HISTORY_FILE, self.record.to_dict())
            write_json(staging / CONFIG_FILE, {
                "kind": "pretrained_base", "backbone": self.backbone, "image_size": list(self.image_size),
                "pretraining": self.record.settings, "versions": package_versions()})
        return directory


def pretrain(model, unlabelled, *, method="autoencoder", epochs=10, learning_rate=1e-3, batch_size=32,
             mask_ratio=0.5, patch_size=8, bn_momentum=0.9, image_size=None, weights=None, seed=None,
             verbose="auto", strategy=None):
    """Pretrains a base on unlabelled images: an autoencoder or masked-image modelling.

    Args:
        model: `ImageClassifier` (its base is trained in place), or a
            backbone name (built with `weights` at `image_size`).
        unlabelled: raw images: an array `(n, h, w, 3)`, or a batched
            `tf.data.Dataset` of images or of `(images, labels)` (labels
            ignored).
        method: str. `"autoencoder"` or `"masked"`. Defaults to
            `"autoencoder"`.
        epochs: int. Defaults to `10`.
        learning_rate: float. Adam's. Defaults to `1e-3`.
        batch_size: int. For arrays. Defaults to `32`.
        mask_ratio: float. `"masked"`: the fraction of patches hidden.
            Defaults to `0.5`.
        patch_size: int. `"masked"`: the side of a patch. Defaults to `8`.
        bn_momentum: float. BatchNorm momentum while pretraining. Defaults
            to `0.9`.
        image_size: int or `None`. For a backbone name. Defaults to its own.
        weights: for a backbone name: `None` (random) or `"imagenet"`
            (continued pretraining), or any source `from_backbone` takes.
            Defaults to `None`.
        seed: int or `None`. Defaults to `None`.
        verbose: `"auto"`, 0, 1 or 2. Defaults to `"auto"`.
        strategy: `tf.distribute.Strategy` or `None`. Trains under it (see
            `fine_tune`); a backbone name is built in its scope. Defaults to
            `None`: a classifier's own, if any.

    Returns:
        `PretrainResult`; `.save(folder)` writes a folder that
        `ImageClassifier.from_backbone(..., weights=folder)` takes.

    Raises:
        ValueError: for an unknown method or a setting out of range, or
            images that do not fit the model.

    Examples:

        >>> images = np.random.uniform(0, 255, (8, 32, 32, 3))
        >>> result = pretrain("mobilenetv3small", images, epochs=1, image_size=32,
        ...                   verbose=0)
        >>> result.record.phases[0].name
        'autoencoder'
    """
    check_choice("method", method, METHODS)
    check_int("epochs", epochs)
    check_number("learning_rate", learning_rate, above=0)
    check_number("mask_ratio", mask_ratio, above=0, below=1)
    check_int("patch_size", patch_size, minimum=1)
    check_number("bn_momentum", bn_momentum, above=0, below=1)
    seed_job(seed)
    classifier = model if isinstance(model, ImageClassifier) else ImageClassifier.from_backbone(
        model, num_classes=2, image_size=image_size, weights=weights, seed=seed, strategy=strategy)
    strategy = distribute.strategy_for(classifier, strategy)
    images, count = _images(unlabelled, classifier, batch_size, seed, strategy)
    base = classifier.base
    base.trainable = True
    for layer in all_layers(base):
        layer.trainable = True
        if is_batchnorm(layer):
            layer.momentum = bn_momentum
    with distribute.scope(strategy):
        reconstruction = Reconstruction(classifier.preprocessor, base, classifier.image_size,
                                        mask_ratio=mask_ratio if method == "masked" else 0.0,
                                        patch_size=patch_size, name=f"{method}_pretraining")
    header = (f"Pretraining ({method}): {epochs} epochs at learning rate {learning_rate:g}; training the "
              "base and a decoder, BatchNorm in training mode")
    phase = Phase(method, reconstruction, images, None, epochs, learning_rate,
                  trainable_blocks=classifier.backbone_spec.block_names if classifier.backbone_spec else (),
                  header=header, compile=lambda m, lr: m.compile(optimizer=keras.optimizers.Adam(lr)))
    result = FineTuneResult.merge([run_phase(phase, FitOptions(verbose=verbose, strategy=strategy))], {
        "method": method, "epochs": epochs, "learning_rate": learning_rate, "mask_ratio":
        mask_ratio if method == "masked" else None, "patch_size": patch_size, "bn_momentum": bn_momentum,
        "seed": seed, "images": count, "start": classifier.weights_source})
    return PretrainResult(base, result, classifier.backbone_name, classifier.image_size)


def _images(data, classifier, batch_size, seed, strategy):
    """The unlabelled images as a shuffled batched dataset, and how many there are."""
    dataset = unlabelled_data(data, classifier, batch_size, seed)
    recipe = recipe_of(dataset)
    count = None if recipe is None else recipe.count
    distribute.check_same_order(strategy, {"unlabelled": dataset})
    return dataset.map(lambda x, y: x), count
