"""The plot of a learning-rate sweep (`LRFinderResult.plot`, `plots.plot_lr_sweep`)."""

from matplotlib.figure import Figure

from transfer_tf.core.figures import DPI, finish

LR_SWEEP_SIZE = (8, 4.5)


def plot_lr_sweep(result, *, path=None):
    """The learning-rate finder's smoothed loss against the rate, its suggestions marked.

    Args:
        result: `LRFinderResult` (from `transfer_tf.find_lr`).
        path: str, path or `None`. Where to write the PNG. Defaults to `None`.

    Returns:
        The `Figure`.
    """
    figure = Figure(figsize=LR_SWEEP_SIZE, dpi=DPI)
    axes = figure.subplots()
    axes.plot(result.learning_rates, result.smoothed, color="tab:blue", label="smoothed loss")
    axes.plot(result.learning_rates, result.losses, color="tab:blue", alpha=0.25, label="batch loss")
    for (name, rate), color in zip(result.suggestions.items(), ("tab:red", "tab:green", "tab:orange")):
        axes.axvline(rate, color=color, linestyle="--", label=f"{name} {rate:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("loss")
    axes.set_title(f"Learning-rate sweep ({result.phase} phase)")
    low, high = min(result.smoothed), max(result.smoothed[: max(len(result.smoothed) // 2, 1)])
    axes.set_ylim(low - 0.1 * abs(low), high + 0.5 * abs(high - low) + 1e-9)
    axes.legend(loc="best")
    figure.tight_layout()
    return finish(figure, path)
