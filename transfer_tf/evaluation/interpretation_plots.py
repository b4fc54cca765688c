"""The pictures of an error analysis: the top losses beside their Grad-CAM, and the most-confused pairs."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from transfer_tf.core.figures import DPI, finish
from transfer_tf.core.integrity import write_json_atomically
from transfer_tf.evaluation.grad_cam import grad_cam

TOP_LOSSES = 12
PAIRS_SHOWN = 10
PANEL_INCHES = 2.3
INTERPRETATION_FILES = {
    "table": "interpretation.csv", "pairs": "most_confused.json",
    "top_losses": "top_losses.png", "most_confused": "most_confused.png",
}


def plot_top_losses(interpretation, *, k=TOP_LOSSES, heat_maps=None, path=None):
    """The `k` misclassified images with the highest loss, each beside its Grad-CAM overlay.

    Args:
        interpretation: `Interpretation` (from `interpret`).
        k: int. How many images. Defaults to `12`.
        heat_maps: array `(k, height, width)` or `None`. The Grad-CAM maps of
            the images `interpretation.top_losses(k)`, in that order; without
            them only the images are drawn. Defaults to `None`.
        path: str, path or `None`. Where to write the PNG. Defaults to `None`.

    Returns:
        The `Figure`: two images a pair, two pairs a row, highest loss first.
    """
    indices = interpretation.top_losses(k)
    columns = 2 if heat_maps is not None else 1
    per_row = 2
    rows = max(1, -(-len(indices) // per_row))
    figure = Figure(figsize=(PANEL_INCHES * columns * per_row, (PANEL_INCHES + 0.5) * rows), dpi=DPI,
                    layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns * per_row)).reshape(rows, -1)
    for ax in axes.reshape(-1):
        ax.axis("off")
    if not len(indices):
        axes[0, 0].text(0, 0.5, "No misclassified images.", fontsize=12)
    for n, index in enumerate(indices):
        row, first = divmod(n, per_row)
        image = interpretation.images(int(index))
        image_axes = axes[row, first * columns]
        image_axes.imshow(image)
        image_axes.set_title(_title(interpretation, index), fontsize=7, color="firebrick")
        if heat_maps is not None:
            overlay = axes[row, first * columns + 1]
            overlay.imshow(image)
            overlay.imshow(heat_maps[n], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            overlay.set_title("Grad-CAM of the prediction", fontsize=7)
    return finish(figure, path)


def plot_most_confused(interpretation, *, pairs=PAIRS_SHOWN, path=None):
    """Horizontal bars: the class pairs mixed up most often, as a share of the true class."""
    confused = interpretation.most_confused()[:pairs]
    figure = Figure(figsize=(8, 0.45 * max(len(confused), 2) + 1), dpi=DPI, layout="constrained")
    axes = figure.subplots()
    if not confused:
        axes.axis("off")
        axes.text(0, 0.5, "No class was confused with another.", fontsize=12)
        return finish(figure, path)
    labels = [f"{p['true']} -> {p['predicted']} ({p['count']})" for p in confused][::-1]
    axes.barh(labels, [100 * p["share"] for p in confused][::-1], color="tab:red")
    axes.set_xlabel("% of the true class's held-out images")
    axes.set_title("Most-confused classes (true -> predicted, count)")
    return finish(figure, path)


def write_interpretation(classifier, interpretation, out, *, k=TOP_LOSSES):
    """Writes the table, the most-confused pairs and both plots (Grad-CAM on the top losses) to `out`.

    Returns:
        dict of what was written: name -> path (see `INTERPRETATION_FILES`).
    """
    out = Path(out)
    indices = interpretation.top_losses(k)
    maps = None
    if len(indices) and hasattr(classifier, "head"):  # a scikit-learn head has no gradient
        images = np.stack([interpretation.images(int(i)) for i in indices]).astype("float32")
        maps = grad_cam(classifier, images, interpretation.predicted[indices])
    written = {name: out / file for name, file in INTERPRETATION_FILES.items()}
    interpretation.write_csv(written["table"])
    write_json_atomically(written["pairs"], interpretation.most_confused())
    plot_top_losses(interpretation, k=k, heat_maps=maps, path=written["top_losses"])
    plot_most_confused(interpretation, path=written["most_confused"])
    return written


def _title(interpretation, index):
    names = interpretation.class_names
    truth, guess = interpretation.labels[index], interpretation.predicted[index]
    scores = interpretation.scores[index]
    name = "/".join(Path(str(interpretation.names[index])).parts[-2:])
    return (f"{name}\ntrue: {names[truth]} ({scores[truth]:.2f})  pred: {names[guess]} ({scores[guess]:.2f})\n"
            f"loss {interpretation.losses[index]:.2f}")
