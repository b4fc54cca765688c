"""`transfer-tf interpret`: where a run fails on a folder of images, and what it looked at."""

from pathlib import Path

from transfer_tf.cli.jobs.held_out import read_held_out
from transfer_tf.evaluation.interpretation import Interpretation, file_reader
from transfer_tf.evaluation.interpretation_plots import TOP_LOSSES, write_interpretation
from transfer_tf.evaluation.predictions import predict_dataset
from transfer_tf.methods.loading import load

INTERPRETATION_DIR = "interpretation"


def interpret_run(run, data_dir, out=None, *, split="all", top_losses=TOP_LOSSES, batch_size=32, verify=True,
                  verbose=1):
    """Analyses a run's mistakes on a folder of images and writes the table and plots to `out`.

    Args:
        run: str or path. A run folder.
        data_dir: str or path. One sub-folder per class, each one of the
            run's classes.
        out: str, path or `None`. Defaults to `RUN/interpretation`.
        split: str. `"all"` images of `data_dir`, or `"train"`,
            `"validation"` or `"test"`: that part of the run's own split of
            it. Defaults to `"all"`.
        top_losses: int. Mistakes shown with their Grad-CAM. Defaults to `12`.
        batch_size: int. Defaults to `32`.
        verify: bool. Refuse a run whose files changed since it was saved.
            Defaults to `True`.
        verbose: int. Defaults to `1`.

    Returns:
        `(Interpretation, written)`: the analysis, and the files written by
        name (`table`, `pairs`, `top_losses`, `most_confused`).

    Raises:
        ValueError: for a multilabel run, a split the run did not make, or
            class folders the run does not know.
    """
    classifier = load(run, verify=verify)
    if classifier.task == "multilabel":
        raise ValueError(f"interpret analyses one label per image; {run} is a multilabel run.")
    held_out = read_held_out(run, classifier, data_dir, split=split, batch_size=batch_size, verbose=verbose)
    reader = file_reader(held_out.paths, classifier.image_size, held_out.resize)
    root = Path(data_dir)
    names = [str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else path
             for path in held_out.paths]
    analysis = Interpretation.from_predictions(predict_dataset(classifier, held_out.dataset),
                                               classifier.class_names, names, reader)
    out = Path(run) / INTERPRETATION_DIR if out is None else Path(out)
    if verbose:
        print(f"Interpret: Grad-CAM of the top {top_losses} losses, most-confused classes ...")
    return analysis, write_interpretation(classifier, analysis, out, k=top_losses)


def format_interpretation(analysis, shown=5):
    """Accuracy, the most-confused pairs and the highest losses, a few lines each."""
    correct = int((analysis.predicted == analysis.labels).sum())
    lines = [f"{correct} of {len(analysis.labels)} images right ({correct / max(len(analysis.labels), 1):.1%})."]
    pairs = analysis.most_confused()[:shown]
    lines += ["Most confused (true -> predicted):"] if pairs else ["No class was confused with another."]
    lines += [f"  {p['true']} -> {p['predicted']}: {p['count']} ({p['share']:.0%} of {p['true']})" for p in pairs]
    top = analysis.top_losses(shown)
    if len(top):
        lines.append("Highest losses:")
        names = analysis.class_names
        lines += [f"  {analysis.names[i]}: {names[analysis.labels[i]]} predicted as {names[analysis.predicted[i]]} "
                  f"({analysis.scores[i][analysis.predicted[i]]:.2f}), loss {analysis.losses[i]:.2f}" for i in top]
    return "\n".join(lines)
