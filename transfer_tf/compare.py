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

from transfer_tf.backbones import get_backbone
from transfer_tf.model import ImageClassifier
from transfer_tf.precision import validate_dtype
from transfer_tf.plots import plot_validation_curves
from transfer_tf.scratch import train_from_scratch
from transfer_tf.training import fine_tune
from transfer_tf.weights import normalise_image_size

METHODS = ("feature_extraction", "fine_tuning", "from_scratch")
DESCRIPTIONS = {
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


def compare(
    splits,
    *,
    backbone="resnet50",
    weights="imagenet",
    image_size=None,
    head_epochs=5,
    fine_tune_epochs=5,
    unfreeze_blocks=1,
    head_lr=1e-3,
    fine_tune_lr=None,
    scratch_lr=1e-3,
    class_weight=None,
    pooling="avg",
    dropout=0.2,
    dtype=None,
    feature_cache="auto",
    seed=0,
    out=None,
    overwrite=False,
    verbose=1,
):
    """Trains one architecture three ways on the same data and compares them.

    Each method gets `head_epochs + fine_tune_epochs` epochs: feature
    extraction trains the head for all of them; fine-tuning splits them into
    its two phases; from scratch trains every layer for all of them, with
    BatchNorm momentum 0.9 (see `train_from_scratch`). The same seed fixes
    the order of the training images for all three.

    Args:
        splits: `ImageSplits` with a validation split (e.g. from
            `data.from_directory`), at the image size of the model.
        backbone: str. See `list_backbones()`. Defaults to `"resnet50"`.
        weights: `"imagenet"`, a weights file, a run folder or a trained
            `ImageClassifier`: the pretrained start of the two transfer
            methods. `None` starts them
            from random weights too, which compares recipes, not transfer.
            Defaults to `"imagenet"`.
        image_size: int, tuple or `None`. Defaults to the splits' size.
        head_epochs, fine_tune_epochs, unfreeze_blocks, head_lr,
            fine_tune_lr: as in `fine_tune`.
        scratch_lr: float. Adam learning rate from scratch. Defaults to
            `1e-3`.
        class_weight: dict, `"balanced"` or `None`. For all three. Defaults
            to `None`.
        pooling, dropout, dtype: as in `ImageClassifier.from_backbone`.
        feature_cache: as in `fine_tune`, for the two transfer methods.
            Defaults to `"auto"`.
        seed: int. Defaults to `0`.
        out: str, path or `None`. Folder for `compare.json`, `compare.md` and
            `compare.png`. Defaults to `None` (nothing written).
        overwrite: bool. Whether an earlier comparison in `out` may be
            replaced. Defaults to `False`.
        verbose: int. 0 silent, 1 progress bars, 2 a line per epoch.
            Defaults to `1`.

    Returns:
        `ComparisonResult`.

    Raises:
        ValueError: for unknown names, bad epochs, splits without
            validation images or of another image size.
        FileExistsError: if `out` holds a comparison and `overwrite` is
            False.

    Example:

    >>> splits = data.from_directory("flowers", image_size=224)  # doctest: +SKIP
    >>> result = compare(splits, backbone="resnet50")            # doctest: +SKIP
    >>> print(result.table())                                    # doctest: +SKIP
    """
    spec = get_backbone(backbone)
    validate_dtype(dtype)
    size = normalise_image_size(splits.image_size if image_size is None else image_size, spec)
    for key, value in (("head_epochs", head_epochs), ("fine_tune_epochs", fine_tune_epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} must be an int >= 0. Received: {key}={value!r}")
    if head_epochs + fine_tune_epochs < 1:
        raise ValueError("compare needs at least one epoch: head_epochs + fine_tune_epochs >= 1.")
    if splits.validation is None:
        raise ValueError(
            "compare measures validation accuracy; the splits hold no validation images. "
            "Use validation_split > 0."
        )
    if tuple(splits.image_size) != tuple(size):
        raise ValueError(
            f"The splits hold {tuple(splits.image_size)} images but the models take {size}; "
            f"load the data at image_size={size}. Received: image_size={image_size!r}"
        )
    if out is not None:
        out = Path(out)
        check_output(out, overwrite)
    if weights is None and verbose:
        print("weights=None: the transfer methods start from random weights too, so this "
              "compares training recipes, not pretrained against random weights.")
    budget = head_epochs + fine_tune_epochs
    weight_by_class = splits.class_weight() if class_weight == "balanced" else class_weight

    def model(start):
        return ImageClassifier.from_backbone(
            spec.name, class_names=splits.class_names, image_size=size, weights=start,
            pooling=pooling, dropout=dropout, dtype=dtype, seed=seed,
        )

    common = dict(class_weight=weight_by_class, seed=seed, verbose=verbose)
    records = {}
    for method in METHODS:
        if verbose:
            print(f"\n== {method.replace('_', ' ')}: {DESCRIPTIONS[method]} ==")
        if method == "from_scratch":
            records[method] = train_from_scratch(
                model(None), splits.train, splits.validation, epochs=budget,
                learning_rate=scratch_lr, **common)
        else:
            tuned = method == "fine_tuning"
            records[method] = fine_tune(
                model(weights), splits.train, splits.validation,
                head_epochs=head_epochs if tuned else budget,
                fine_tune_epochs=fine_tune_epochs if tuned else 0,
                unfreeze_blocks=unfreeze_blocks if tuned else 0,
                head_lr=head_lr, fine_tune_lr=fine_tune_lr, feature_cache=feature_cache, **common)
    result = ComparisonResult(
        rows=[_row(method, record) for method, record in records.items()],
        curves={m: list(r.history.get("val_accuracy", [])) for m, r in records.items()},
        boundaries={m: (r.phase_boundary if len(r.phases) == 2 and r.phases[1].epochs else None)
                    for m, r in records.items()},
        settings=dict(
            backbone=spec.name, weights=_weights_name(weights),
            image_size=list(size), head_epochs=head_epochs, fine_tune_epochs=fine_tune_epochs,
            unfreeze_blocks=unfreeze_blocks, head_lr=head_lr,
            fine_tune_lr=records["fine_tuning"].settings["fine_tune_lr"], scratch_lr=scratch_lr,
            class_weight=class_weight if isinstance(class_weight, (str, type(None))) else "custom",
            seed=seed, counts=splits.counts,
        ),
    )
    if out is not None:
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
    return {
        "method": method,
        "description": DESCRIPTIONS[method],
        "epochs": sum(phase.epochs for phase in record.phases),
        "final_val_accuracy": accuracy[-1] if accuracy else None,
        "best_val_accuracy": max(accuracy) if accuracy else None,
        "seconds": sum(phase.seconds for phase in record.phases),
        "trainable_params": max(phase.trainable_params for phase in record.phases),
    }


def _write(result, out):
    out.mkdir(parents=True, exist_ok=True)
    result.plot(path=out / COMPARE_PLOT)
    settings = ", ".join(f"{k}={v}" for k, v in result.settings.items() if k != "counts")
    (out / COMPARE_TABLE).write_text(
        f"# Transfer learning against training from scratch\n\nSettings: {settings}\n\n"
        f"{result.table()}\n\n![Validation accuracy per epoch]({COMPARE_PLOT})\n"
    )
    # compare.json last: its presence marks a finished comparison.
    (out / COMPARE_JSON).write_text(json.dumps(result.to_dict(), indent=2) + "\n")


def _weights_name(weights):
    """`weights` as text: a name or path, or the name of a model passed as the source."""
    if weights is None or isinstance(weights, (str, Path)):
        return None if weights is None else str(weights)
    return f"{type(weights).__name__} {getattr(weights, 'name', '')}".strip()


def _percent(value):
    return "n/a" if value is None else f"{value:.1%}"
