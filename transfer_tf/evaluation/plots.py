"""Plots of a run: training curves, confusion matrix, mistakes, class counts, reliability.

Each function returns a matplotlib `Figure` (a notebook shows it inline) and,
given `path`, also writes it as a PNG of `figure size x DPI` pixels. Figures
are made without `pyplot`, so no global figure state builds up in long jobs.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from transfer_tf.core.figures import DPI, finish
from transfer_tf.evaluation.metrics import THRESHOLD
from transfer_tf.training.lr_plot import plot_lr_sweep

__all__ = [
    "plot_class_distribution",
    "plot_lr_sweep",
    "plot_confusion_matrix",
    "plot_history",
    "plot_mistakes",
    "plot_validation_curves",
]

HISTORY_SIZE = (10, 4)
DISTRIBUTION_SIZE = (8, 4)
COMPARISON_SIZE = (8, 4.5)
MISTAKE_COLUMNS = 4
ANNOTATED_UP_TO = 20  # classes; a larger confusion matrix has no numbers in its cells


def plot_history(record, *, path=None):
    """Loss and accuracy per epoch across both phases, the phase change marked.

    Args:
        record: `FineTuneResult` (e.g. `clf.training_record`) or its dict.
        path: str, path or `None`. Where to write the PNG. Defaults to
            `None`.

    Returns:
        matplotlib `Figure`, 1,000 x 400 pixels.
    """
    data = record if isinstance(record, dict) else record.to_dict()
    history, phases = data["history"], data["phases"]
    figure = Figure(figsize=HISTORY_SIZE, dpi=DPI, layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style, label in ((metric, "-", "training"), (f"val_{metric}", "--", "validation")):
            values = [np.nan if v is None else v for v in history.get(key, [])]
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3, label=label)
        if len(phases) == 2 and phases[0]["epochs"] and phases[1]["epochs"]:
            ax.axvline(data["phase_boundary"] + 0.5, color="grey", linestyle=":",
                       label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend()
    return finish(figure, path)


def plot_confusion_matrix(metrics, *, normalized=True, path=None):
    """The confusion matrix of `evaluate`'s result as a heat map.

    Args:
        metrics: dict from `evaluate` (one label per image).
        normalized: bool. Colour and annotate each row as fractions of the
            true class's images; `False` shows counts. Defaults to `True`.
        path: str, path or `None`. Where to write the PNG. Defaults to
            `None`.

    Returns:
        matplotlib `Figure`, square, larger for more classes.

    Raises:
        ValueError: for multilabel metrics, which have no single matrix.
    """
    if "confusion_matrix" not in metrics:
        raise ValueError(
            "A confusion matrix needs one label per image; multilabel metrics have "
            "per-label counts in 'label_confusion'."
        )
    names = list(metrics["class_names"])
    counts = np.asarray(metrics["confusion_matrix"])
    values = np.asarray(metrics["confusion_matrix_normalized"]) if normalized else counts
    side = confusion_matrix_inches(len(names))
    figure = Figure(figsize=(side, side), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalized else max(1, counts.max()))
    figure.colorbar(image, ax=ax, shrink=0.8)
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({'row-normalised' if normalized else 'counts'}, "
                 f"{metrics['num_images']} images)")
    if len(names) <= ANNOTATED_UP_TO:
        threshold = values.max() / 2 if values.size else 0
        for (row, col), value in np.ndenumerate(values):
            text = f"{value:.2f}" if normalized else str(int(value))
            ax.text(col, row, text, ha="center", va="center", fontsize=8,
                    color="white" if value > threshold else "black")
    return finish(figure, path)


def confusion_matrix_inches(num_classes):
    """The side in inches of the confusion-matrix figure for `num_classes`."""
    return float(min(16, max(5, 0.5 * num_classes + 3)))


def plot_mistakes(predictions, class_names, *, path=None, names=None):
    """A grid of misclassified images with true and predicted labels and scores.

    Args:
        predictions: `evaluation.Predictions` holding `mistakes`
            (`predict_dataset(..., keep_mistakes=16)`).
        class_names: list of str.
        path: str, path or `None`. Where to write the PNG. Defaults to
            `None`.
        names: list of str or `None`. A name per dataset index (e.g. file
            names) shown above each image. Defaults to `None`.

    Returns:
        matplotlib `Figure`: `MISTAKE_COLUMNS` images a row, 2.5 inches
        each; one line of text when nothing was misclassified.
    """
    mistakes = predictions.mistakes
    rows = max(1, -(-len(mistakes) // MISTAKE_COLUMNS))
    figure = Figure(figsize=(2.5 * MISTAKE_COLUMNS, 2.7 * rows), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, MISTAKE_COLUMNS)).reshape(-1)
    for ax in axes:
        ax.axis("off")
    if not mistakes:
        axes[0].text(0, 0.5, "No misclassified images.", fontsize=12)
    for ax, (index, image) in zip(axes, mistakes):
        scores = predictions.scores[index]
        truth = predictions.labels[index]
        ax.imshow(image)
        title = _mistake_title(truth, scores, class_names)
        if names is not None:
            title = f"{_short_name(names[index])}\n{title}"
        ax.set_title(title, fontsize=8, color="firebrick")
    return finish(figure, path)


def _short_name(name):
    """`class_folder/file.png` of a path: enough to find the image again."""
    return "/".join(Path(str(name)).parts[-2:])


def _mistake_title(truth, scores, class_names):
    truth = np.asarray(truth).reshape(-1)
    if truth.size > 1:  # multilabel: the labels set and the labels predicted
        true_names = [n for n, t in zip(class_names, truth) if t]
        predicted = [f"{n} {s:.2f}" for n, s in zip(class_names, scores) if s >= THRESHOLD]
        return f"true: {', '.join(true_names) or '-'}\npred: {', '.join(predicted) or '-'}"
    best = int(np.argmax(scores))
    label = int(truth[0])
    return (f"true: {class_names[label]} ({scores[label]:.2f})\n"
            f"pred: {class_names[best]} ({scores[best]:.2f})")


def plot_class_distribution(counts, class_names, *, path=None):
    """Images per class in each split, as grouped bars.

    Args:
        counts: dict. Split name to a list of counts per class (e.g.
            `ImageSplits.counts`); empty splits are left out.
        class_names: list of str.
        path: str, path or `None`. Where to write the PNG. Defaults to
            `None`.

    Returns:
        matplotlib `Figure`, 800 x 400 pixels.
    """
    splits = [s for s, c in counts.items() if sum(c)]
    figure = Figure(figsize=DISTRIBUTION_SIZE, dpi=DPI, layout="constrained")
    ax = figure.subplots()
    positions = np.arange(len(class_names))
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        ax.bar(positions + (i - (len(splits) - 1) / 2) * width, counts[split], width, label=split)
    ax.set_xticks(positions, class_names, rotation=45 if len(class_names) > 6 else 0,
                  ha="right" if len(class_names) > 6 else "center")
    ax.set_ylabel("images")
    ax.set_title("Images per class")
    ax.grid(axis="y", alpha=0.3)
    if splits:
        ax.legend()
    return finish(figure, path)


def plot_validation_curves(curves, *, boundaries=None, path=None):
    """Validation accuracy per epoch of several trainings on one plot.

    Args:
        curves: dict. Name of a training to its validation accuracy per
            epoch.
        boundaries: dict or `None`. Name to the epoch index where its second
            phase starts, marked with a dotted line. Defaults to `None`.
        path: str, path or `None`. Where to write the PNG. Defaults to
            `None`.

    Returns:
        matplotlib `Figure`, 800 x 450 pixels.

    Examples:

        >>> figure = plot_validation_curves({"fine-tuning": [0.6, 0.8, 0.9]},
        ...                                 boundaries={"fine-tuning": 2})
        >>> [int(v * DPI) for v in figure.get_size_inches()]
        [800, 450]
    """
    figure = Figure(figsize=COMPARISON_SIZE, dpi=DPI, layout="constrained")
    ax = figure.subplots()
    for name, values in curves.items():
        values = [np.nan if v is None else v for v in values]
        line, = ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name)
        boundary = (boundaries or {}).get(name)
        if boundary:
            ax.axvline(boundary + 0.5, color=line.get_color(), linestyle=":",
                       label=f"{name}: phase 2 starts")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return finish(figure, path)


def plot_reliability(result, *, path=None):
    """Reliability diagrams before and after temperature scaling (`calibrate`'s result).

    Each bar is a bin of confidence: its height the accuracy of the images
    in it; the diagonal is perfect calibration. The titles give the
    expected calibration error.

    Args:
        result: `CalibrationResult`.
        path: str, path or `None`. Where to write the PNG. Defaults to
            `None`.

    Returns:
        matplotlib `Figure`, 800 x 400 pixels.
    """
    figure = Figure(figsize=DISTRIBUTION_SIZE, dpi=DPI, layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    for ax, table, title in zip(panels, (result.reliability_before, result.reliability_after),
                                (f"before: ECE {result.ece_before:.3f}",
                                 f"after, T = {result.temperature:.2f}: ECE {result.ece_after:.3f}")):
        bins = len(table["count"])
        edges = np.arange(bins) / bins
        accuracy = [0.0 if a is None else a for a in table["accuracy"]]
        ax.bar(edges, accuracy, width=1 / bins, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_title(title)
    panels[0].set_ylabel("accuracy")
    panels[0].legend(loc="upper left")
    return finish(figure, path)
