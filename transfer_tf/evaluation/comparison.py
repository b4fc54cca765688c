"""`compare`: transfer learning against training from scratch, on your own data.

The same architecture is trained three ways on the same split and the same
epoch budget:

- feature extraction: pretrained base frozen, only the head trains;
- fine-tuning: `fine_tune`'s two phases (head, then the top blocks too);
- from scratch: random initial weights, every layer trains.

The table and the plot of validation accuracy per epoch show what the
pretrained weights are worth on this data.
"""

import dataclasses
import json
from pathlib import Path

from transfer_tf.backbones.registry import get_backbone
from transfer_tf.core.checks import normalise_image_size
from transfer_tf.core.settings_base import fill, keywords_of
from transfer_tf.core.staging import staged_folder
from transfer_tf.evaluation.plots import plot_validation_curves
from transfer_tf.evaluation.predictions import evaluate
from transfer_tf.methods.classical import fit_classical
from transfer_tf.model import distribute
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.training.scratch import train_from_scratch
from transfer_tf.training.settings import FineTuneSettings, ModelSettings, ScratchSettings
from transfer_tf.training.two_phase import fine_tune

METHODS = ("classical", "feature_extraction", "fine_tuning", "from_scratch")
DESCRIPTIONS = {
    "classical": "scikit-learn estimator on the frozen base's features",
    "feature_extraction": "pretrained base frozen, head only",
    "fine_tuning": "head, then the top blocks at a low learning rate",
    "from_scratch": "random init, every layer trains",
}
COMPARE_JSON = "compare.json"
COMPARE_TABLE = "compare.md"
COMPARE_PLOT = "compare.png"


@dataclasses.dataclass
class ComparisonResult:
    """What `compare` measured.

    Attributes:
        rows: list of dict. Per method: `method`, `description`, `epochs`,
            `final_val_accuracy`, `best_val_accuracy`, `seconds`,
            `trainable_params` (the most that trained in any phase).
        curves: dict. Method to its validation accuracy per epoch.
        boundaries: dict. Method to the epoch where its phase 2 starts, or
            `None`.
        settings: dict. Backbone, weights, image size, epochs, learning rates.
    """

    rows: list
    curves: dict
    boundaries: dict
    settings: dict

    def to_dict(self):
        """Returns the result as plain JSON-serialisable data."""
        return dataclasses.asdict(self)

    def table(self):
        """A Markdown table of the rows."""
        lines = [
            "| method | what trains | epochs | final val accuracy | best val accuracy | time | trainable parameters |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            lines.append(
                f"| {row['method']} | {row['description']} | {row['epochs']} | "
                f"{_percent(row['final_val_accuracy'])} | {_percent(row['best_val_accuracy'])} | "
                f"{row['seconds']:.1f} s | {row['trainable_params']:,} |"
            )
        return "\n".join(lines)

    def plot(self, *, path=None):
        """Validation accuracy per epoch of the three methods (a `Figure`)."""
        return plot_validation_curves(self.curves, boundaries=self.boundaries, path=path)


@keywords_of(ModelSettings, FineTuneSettings)
def compare(splits, *, model=None, training=None, scratch_lr=1e-3, classical="logistic", seed=0, out=None,
            overwrite=False, strategy=None, verbose=1, **keywords):
    """Trains one architecture three ways on the same data and compares them.

    The classical row fits a scikit-learn estimator on the frozen base's
    pooled features (no epochs). Each other method gets
    `head_epochs + fine_tune_epochs` epochs: feature
    extraction trains the head for all of them; fine-tuning splits them into
    its two phases; from scratch trains every layer for all of them, with
    BatchNorm momentum 0.9 (see `train_from_scratch`). The same seed fixes
    every model's initial weights and the order of the training images for
    all three.

    Args:
        splits: `ImageSplits` with a validation split (e.g. from
            `data.from_directory`), at the image size of the model.
        model: `ModelSettings` or `None`. The backbone, its pretrained
            `weights` (the start of the two transfer methods; `None` starts
            them from random weights too, which compares recipes, not
            transfer), pooling, dropout, dtype. `image_size` defaults to the
            splits'. Defaults to `None` (the defaults, EfficientNet-Lite0 on ImageNet).
        training: `FineTuneSettings` or `None`. The epochs, learning rates
            and other settings of the two transfer methods. Defaults to
            `None` (the defaults).
        scratch_lr: float. Adam learning rate from scratch. Defaults to
            `1e-3`.
        classical: str or `None`. The scikit-learn estimator of the
            classical row (`"logistic"`, `"linear_svm"`, `"rbf_svm"`,
            `"knn"`), fitted on the frozen base's features with its
            regularisation cross-validated; `None` leaves the row out.
            Defaults to `"logistic"`.
        seed: int. Defaults to `0`.
        out: str, path or `None`. Folder for `compare.json`, `compare.md` and
            `compare.png`. Defaults to `None` (nothing written).
        overwrite: bool. Whether an earlier comparison in `out` may be
            replaced. Defaults to `False`.
        strategy: `tf.distribute.Strategy` or `None`. The three trained
            methods train under it (see `distribute`); the classical row
            runs on each process alone (inference and scikit-learn). Under
            several workers only the chief writes `out`. Defaults to `None`.
        verbose: int. 0 silent, 1 progress bars, 2 a line per epoch.
            Defaults to `1`.
        **keywords: any field of `ModelSettings` or `FineTuneSettings`
            (`backbone="vgg16"`, `head_epochs=3`, `class_weight="balanced"`,
            ...), changing the settings above.

    Returns:
        `ComparisonResult`.

    Raises:
        ValueError: for unknown names, bad epochs, splits without
            validation images or of another image size.
        TypeError: for an unknown keyword.
        FileExistsError: if `out` holds a comparison and `overwrite` is
            False.

    Examples:

        >>> splits = data.from_directory("flowers", image_size=224)  # doctest: +SKIP
        >>> result = compare(splits, backbone="resnet50")            # doctest: +SKIP
        >>> print(result.table())                                    # doctest: +SKIP
    """
    given = fill({"model": ModelSettings, "training": FineTuneSettings}, keywords,
                 {"model": model, "training": training}, caller="compare")
    model, training = given["model"], given["training"].replace(seed=seed)
    scratch = ScratchSettings(epochs=training.head_epochs + training.fine_tune_epochs,
                              learning_rate=scratch_lr, class_weight=training.class_weight, seed=seed)
    spec = get_backbone(model.backbone)
    size = normalise_image_size(splits.image_size if model.image_size is None else model.image_size, spec)
    if scratch.epochs < 1:
        raise ValueError("compare needs at least one epoch: head_epochs + fine_tune_epochs >= 1.")
    if splits.validation is None:
        raise ValueError(
            "compare measures validation accuracy; the splits hold no validation images. "
            "Use validation_split > 0."
        )
    if tuple(splits.image_size) != tuple(size):
        raise ValueError(
            f"The splits hold {tuple(splits.image_size)} images but the models take {size}; "
            f"load the data at image_size={size}. Received: image_size={model.image_size!r}"
        )
    if out is not None:
        out = Path(out)
        check_output(out, overwrite)
    if model.weights is None and verbose:
        print("weights=None: the transfer methods start from random weights too, so this "
              "compares training recipes, not pretrained against random weights.")

    def classifier(start, strategy=strategy):
        return ImageClassifier.from_backbone(
            spec.name, class_names=splits.class_names, image_size=size, weights=start,
            pooling=model.pooling, dropout=model.dropout, dtype=model.dtype, seed=seed, strategy=strategy,
        )

    head_only = training.replace(head_epochs=scratch.epochs, fine_tune_epochs=0, unfreeze_blocks=0)
    records = {}
    for method in METHODS if classical else METHODS[1:]:
        if verbose:
            print(f"\n== {method.replace('_', ' ')}: {DESCRIPTIONS[method]} ==")
        if method == "classical":
            fitted = fit_classical(classifier(model.weights, strategy=None), splits.train, estimator=classical, seed=seed,
                                   feature_cache_mode=training.feature_cache, verbose=bool(verbose))
            accuracy = evaluate(fitted, splits.validation)["accuracy"]
            record = fitted.training_record
            record.history = {"val_accuracy": [accuracy]}
            records[method] = record
        elif method == "from_scratch":
            records[method] = train_from_scratch(classifier(None), splits.train, splits.validation,
                                                 settings=scratch, verbose=verbose, strategy=strategy)
        else:
            records[method] = fine_tune(
                classifier(model.weights), splits.train, splits.validation,
                settings=training if method == "fine_tuning" else head_only, verbose=verbose,
                strategy=strategy)
    result = ComparisonResult(
        rows=[_row(method, record) for method, record in records.items()],
        curves={m: list(r.history.get("val_accuracy", [])) for m, r in records.items() if m != "classical"},
        boundaries={m: (r.phase_boundary if len(r.phases) == 2 and r.phases[1].epochs else None)
                    for m, r in records.items()},
        settings=dict(
            **{k: v for k, v in model.to_dict().items() if k not in ("weights", "image_size")},
            weights=_weights_name(model.weights), image_size=list(size),
            **{k: v for k, v in training.to_dict().items()
               if k in ("head_epochs", "fine_tune_epochs", "unfreeze_blocks", "head_lr",
                        "fine_tune_lr", "class_weight")},
            scratch_lr=scratch_lr, seed=seed, counts=splits.counts,
        ),
    )
    if out is not None and distribute.is_chief(strategy):
        _write(result, out)
        if verbose:
            print(f"\n{result.table()}\n\nWrote {out / COMPARE_TABLE}, {out / COMPARE_JSON} "
                  f"and {out / COMPARE_PLOT}")
    return result


def check_output(out, overwrite):
    """Refuses to replace an earlier comparison in `out` unless `overwrite`."""
    if (Path(out) / COMPARE_JSON).exists() and not overwrite:
        raise FileExistsError(
            f"{out} already holds a comparison. Choose another folder or allow "
            "replacing it (--overwrite / overwrite=True)."
        )


def _row(method, record):
    accuracy = [v for v in record.history.get("val_accuracy", []) if v is not None]
    description = DESCRIPTIONS[method]
    if method == "classical":
        description = f"{record.settings['estimator']} on the frozen base's features"
    return {
        "method": method,
        "description": description,
        "epochs": sum(phase.epochs for phase in record.phases),
        "final_val_accuracy": accuracy[-1] if accuracy else None,
        "best_val_accuracy": max(accuracy) if accuracy else None,
        "seconds": sum(phase.seconds for phase in record.phases),
        "trainable_params": max(phase.trainable_params for phase in record.phases),
    }


def _write(result, out):
    settings = ", ".join(f"{k}={v}" for k, v in result.settings.items() if k != "counts")
    # compare.json last: its presence marks a finished comparison.
    with staged_folder(out, last=COMPARE_JSON) as staging:
        result.plot(path=staging / COMPARE_PLOT)
        (staging / COMPARE_TABLE).write_text(
            f"# Transfer learning against training from scratch\n\nSettings: {settings}\n\n"
            f"{result.table()}\n\n![Validation accuracy per epoch]({COMPARE_PLOT})\n"
        )
        (staging / COMPARE_JSON).write_text(json.dumps(result.to_dict(), indent=2) + "\n")


def _weights_name(weights):
    """`weights` as text: a name or path, or the name of a model passed as the source."""
    if weights is None or isinstance(weights, (str, Path)):
        return None if weights is None else str(weights)
    return f"{type(weights).__name__} {getattr(weights, 'name', '')}".strip()


def _percent(value):
    return "n/a" if value is None else f"{value:.1%}"
