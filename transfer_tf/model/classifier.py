"""`ImageClassifier`: raw pixels -> preprocessing -> frozen base -> head; and `load`."""

import copy
import warnings

import keras

from transfer_tf.backbones.preprocessing import ImagePreprocessing
from transfer_tf.backbones.registry import get_backbone
from transfer_tf.backbones.weights import build_base, describe_weights, is_saved_model_path
from transfer_tf.core.checks import check_choice, normalise_image_size
from transfer_tf.core.choices import TASKS
from transfer_tf.core.seeding import seed_job
from transfer_tf.model import distribute, saving
from transfer_tf.model.head import build_head, output_units, validate_head_args
from transfer_tf.model.inference import batch_function
from transfer_tf.model.precision import dtype_policy_scope
from transfer_tf.model.records import FineTuneResult
from transfer_tf.model.temperature import TemperatureScaling, check_temperature, check_unknown_threshold


@keras.saving.register_keras_serializable(package="transfer_tf")
class ImageClassifier(keras.Model):
    """An image classifier made of a pretrained base and a small head.

    The model takes raw RGB pixels in [0, 255] of a fixed height and width;
    the backbone's preprocessing is a layer inside the graph. The base is
    always called in inference mode (`training=False`), so its
    BatchNormalization statistics and dropout stay as trained, whichever of
    its layers are being fine-tuned. The head is a model of its own and knows
    nothing of the base but its feature shape.

    Most users build one with `ImageClassifier.from_backbone(...)`.

    Args:
        base: `keras.Model`. The feature extractor, from preprocessed images
            to a feature map.
        head: `keras.Model`. From the base's feature map to probabilities.
        preprocessing: str. Mode of the `ImagePreprocessing` layer in front of
            the base: `"caffe"`, `"tf"`, `"torch"` or `"none"`. Defaults to
            `"none"`.
        class_names: list of str or `None`. One name per class, in label
            order. Defaults to `None`, which names the classes `"0"`, `"1"`...
        task: str. `"multiclass"`, `"binary"` or `"multilabel"`. Defaults to
            `"multiclass"`.
        backbone_name: str or `None`. The registry name of the base, which
            lets the trainer unfreeze it block by block. Defaults to `None`.
        weights_source: str or `None`. Where the base's weights came from, for
            the record. Defaults to `None`.
        temperature: float > 0. Divides the logits behind the head's
            probabilities (`TemperatureScaling`); `calibrate` fits it on
            validation images. Defaults to `1.0` (scores unchanged).
        unknown_threshold: float in (0, 1] or `None`. The highest class
            probability below which an image is answered "unknown"
            (`predict_labels(..., reject=True)`); `calibrate` chooses it on
            validation images. Defaults to `None` (no rejection).
        **kwargs: Standard `keras.Model` arguments.

    Raises:
        ValueError: if the head's output does not fit `task` and the number of
            classes, or `class_names` has duplicates.

    Examples:

        >>> clf = ImageClassifier.from_backbone(
        ...     "vgg16", num_classes=3, image_size=32, weights=None)
        >>> clf.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape
        (2, 3)
    """

    def __init__(
        self,
        base,
        head,
        *,
        preprocessing="none",
        class_names=None,
        task="multiclass",
        backbone_name=None,
        weights_source=None,
        temperature=1.0,
        unknown_threshold=None,
        **kwargs,
    ):
        head_units = head.output.shape[-1]
        if class_names is None:
            num_classes = 2 if task == "binary" else head_units
            class_names = [str(i) for i in range(num_classes)]
        class_names = [str(name) for name in class_names]
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names must be unique. Received: class_names={class_names}")
        check_choice("task", task, TASKS)
        if head_units != output_units(task, len(class_names)):
            raise ValueError(
                f"The head has {head_units} outputs, which does not fit a {task} "
                f"task with {len(class_names)} classes. Received: class_names={class_names}"
            )

        # Layers.
        super().__init__(**kwargs)
        # float32 under any policy, so a loaded model normalises as the built one did.
        self.preprocessor = ImagePreprocessing(preprocessing, name="preprocessing", dtype="float32")
        self.base = base
        self.head = head
        self.calibration = TemperatureScaling(task, temperature, name="temperature")

        # Config.
        self.preprocessing = preprocessing
        self.class_names = class_names
        self.task = task
        self.backbone_name = backbone_name
        self.weights_source = weights_source
        self.temperature = self.calibration.temperature
        self.unknown_threshold = check_unknown_threshold(unknown_threshold)
        # Set by `fine_tune`, written to history.json by `save`.
        self.training_record = None
        self._inference = None  # traced by the first `predict_on_batch`

        self.build((None, *self.image_size, 3))

    @property
    def image_size(self):
        """The `(height, width)` of the images the model takes."""
        return tuple(self.base.input_shape[1:3])

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def backbone_spec(self):
        """The `BackboneSpec` of the base, or `None` for a custom base."""
        return None if self.backbone_name is None else get_backbone(self.backbone_name)

    def build(self, input_shape):
        self.preprocessor.build(input_shape)
        self.built = True

    def call(self, images, training=None):
        features = self.base(self.preprocessor(images), training=False)
        return self.calibration(self.head(features, training=training))

    def set_temperature(self, temperature):
        """Sets the temperature that scales the head's logits (see `calibrate`); 1 leaves them as they are.

        Calibrate once training is over: a later `fit` would see it too. A
        changed temperature clears `unknown_threshold`, which was chosen on
        the old probabilities.

        Raises:
            ValueError: unless `temperature` is a number > 0.
        """
        temperature = check_temperature(temperature)
        if temperature != self.temperature and self.unknown_threshold is not None:
            warnings.warn(f"The temperature changed from {self.temperature:.4g} to {temperature:.4g}: "
                          f"unknown_threshold={self.unknown_threshold:.4g}, chosen for the old probabilities, "
                          "is cleared. Choose it again with calibrate.", stacklevel=2)
            self.unknown_threshold = None
        self.calibration.temperature = self.temperature = temperature
        # Traced graphs hold the old value (a Python number): trace again.
        self._inference = self.predict_function = self.test_function = self.train_function = None

    def set_unknown_threshold(self, threshold):
        """Sets the class probability below which `predict_labels(..., reject=True)` answers "unknown"."""
        self.unknown_threshold = check_unknown_threshold(threshold)

    def predict_on_batch(self, x):
        """The outputs for one batch of raw images `(n, height, width, 3)`, as a NumPy array.

        One graph, traced on the first call for any batch size, runs every
        batch in inference mode: on a CPU several times faster than eager
        calls, and the last, smaller batch of a dataset is not traced again.
        Unlike Keras's own, it runs the batch once under any distribution strategy (Keras's
        runs it on every replica and concatenates the copies).
        """
        if self._inference is None:
            self._inference = batch_function(self)
        return self._inference(x)

    def extract_features(self, images):
        """Returns the base's feature maps for raw images (inference mode)."""
        return self.base(self.preprocessor(images), training=False)

    @classmethod
    def from_backbone(
        cls,
        backbone,
        num_classes=None,
        *,
        class_names=None,
        image_size=None,
        weights="imagenet",
        task="multiclass",
        pooling="avg",
        dropout=0.2,
        hidden_units=(),
        dtype=None,
        seed=None,
        strategy=None,
    ):
        """Builds a classifier on a registered backbone, its base frozen.

        Args:
            backbone: str. A registry name (see `list_backbones()`), e.g.
                `"resnet50"`.
            num_classes: int or `None`. The number of classes. May be left out
                when `class_names` is given.
            class_names: list of str or `None`. Names of the classes in label
                order. Defaults to `None` (`"0"`, `"1"`, ...).
            image_size: int, tuple or `None`. Input `(height, width)`.
                Defaults to the backbone's ImageNet size.
            weights: `"imagenet"`, `None`, a path to a `.h5`/`.weights.h5`
                file, or a transfer_tf run folder / `.keras` file / classifier
                whose base weights to reuse (source-to-target transfer; its
                head is replaced). Defaults to `"imagenet"`.
            task: str. `"multiclass"`, `"binary"` or `"multilabel"`. Defaults
                to `"multiclass"`.
            pooling: str. `"avg"` or `"max"`. Defaults to `"avg"`.
            dropout: float. Dropout before each dense layer of the head.
                Defaults to `0.2`.
            hidden_units: tuple of int. Dense ReLU layers in the head before
                the output. Defaults to `()`.
            dtype: str or `None`. The dtype policy the model is built with:
                `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"`. Mixed
                policies keep the weights (and the output layer) float32 and
                compute in 16 bits: faster on GPUs and on CPUs with bfloat16
                instructions, slightly less exact. `export` writes a float32
                copy. Defaults to `None`: Keras's global policy
                (`keras.config.dtype_policy()`), float32 unless set.
            seed: int or `None`. Seeds Python, NumPy and Keras before the
                layers are made, so the initial weights (the head's, and
                the base's with `weights=None`) depend on the seed only, not
                on what ran before. Defaults to `None`.
            strategy: `tf.distribute.Strategy` or `None`. Builds the model in
                its scope, so its variables are replicated; the trainers then
                run under it (see `distribute`). Defaults to `None`.

        Returns:
            An `ImageClassifier` whose base is frozen (not trainable).

        Raises:
            ValueError: for an unknown backbone, an image size below the
                backbone's minimum, inconsistent `num_classes`/`class_names`,
                a head argument out of range, or an unknown `dtype`.
            WeightsNotAvailableError: for `"imagenet"` offline with no cached
                weights file.
            FileNotFoundError: for a weights path that does not exist.

        Examples:

            >>> clf = ImageClassifier.from_backbone(
            ...     "resnet50", class_names=["cat", "dog"], image_size=32,
            ...     weights=None)
            >>> clf.base.trainable
            False
        """
        spec = get_backbone(backbone)
        num_classes = _resolve_num_classes(num_classes, class_names)
        validate_head_args(
            task=task, num_classes=num_classes, pooling=pooling,
            dropout=dropout, hidden_units=tuple(hidden_units),
        )
        image_size = normalise_image_size(
            spec.default_size if image_size is None else image_size, spec
        )
        source = load(weights) if is_saved_model_path(weights) else weights
        seed_job(seed)
        with distribute.scope(strategy), dtype_policy_scope(dtype):
            base = build_base(spec, image_size, source)
            base.trainable = False
            head = build_head(
                base.output.shape[1:], num_classes, task=task, pooling=pooling,
                dropout=dropout, hidden_units=hidden_units,
            )
            return cls(
                base, head, preprocessing=spec.preprocessing, class_names=class_names,
                task=task, backbone_name=spec.name,
                weights_source=describe_weights(weights),
            )

    def save(self, filepath, overwrite=True, *, data_summary=None, **kwargs):
        """Saves a run folder, or a single `.keras` file.

        A path ending in `.keras` is saved by Keras as one file (`kwargs` go
        to `keras.Model.save`). Any other path is a run folder holding
        `model.keras`, `labels.txt`, `config.json`, `history.json` once
        trained, and `data.json` given `data_summary` (see `transfer_tf.save`).
        """
        if str(filepath).endswith(".keras"):
            if data_summary is not None:
                raise ValueError(
                    "data_summary is written to a run folder; a .keras file holds the "
                    f"model only. Received: filepath={str(filepath)!r}"
                )
            return super().save(filepath, overwrite=overwrite, **kwargs)
        if kwargs:
            raise TypeError(f"Unexpected arguments for a run folder: {sorted(kwargs)}")
        return saving.save(self, filepath, overwrite=overwrite, data_summary=data_summary)

    def get_config(self):
        config = super().get_config()
        config.update(
            base=keras.saving.serialize_keras_object(self.base),
            head=keras.saving.serialize_keras_object(self.head),
            preprocessing=self.preprocessing,
            class_names=self.class_names,
            task=self.task,
            backbone_name=self.backbone_name,
            weights_source=self.weights_source,
            temperature=self.temperature,
            unknown_threshold=self.unknown_threshold,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # Keras's deserializer consumes nested dicts
        config["base"] = keras.saving.deserialize_keras_object(config["base"])
        config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls(**config)


def _resolve_num_classes(num_classes, class_names):
    if class_names is None:
        if num_classes is None:
            raise ValueError("Pass num_classes or class_names. Received neither.")
        return num_classes
    if num_classes is not None and num_classes != len(class_names):
        raise ValueError(
            f"num_classes={num_classes} does not match the {len(class_names)} "
            f"class_names. Received: class_names={list(class_names)}"
        )
    return len(class_names)


def load(path, strategy=None, verify=True):
    """Loads an `ImageClassifier` (or another `keras.Model` of a `.keras` file) with its training record.

    `transfer_tf.load` (`methods.loading.load`) is the public entry: it
    documents the arguments and wraps a run with a classical head.
    """
    with distribute.scope(strategy):
        model, history = saving.load_run(path, verify=verify)
    if isinstance(model, ImageClassifier) and history is not None:
        model.training_record = FineTuneResult.from_dict(history)
    return model
