"""`transfer-tf evaluate`: a run's metrics on a folder of images."""


from transfer_tf.cli.jobs.held_out import read_held_out
from transfer_tf.evaluation.predictions import evaluate
from transfer_tf.methods.loading import load
from transfer_tf.model.saving import write_metrics


def evaluate_run(run, data_dir, *, split="all", batch_size=32, verify=True, verbose=1):
    """Evaluates a run folder on a folder of images and writes `RUN/metrics.json`.

    Args:
        run: str or path. A run folder from `train_run` or `clf.save`.
        data_dir: str or path. One sub-folder per class; every folder name
            must be one of the run's classes.
        split: str. `"all"` evaluates every image in `data_dir`;
            `"train"`, `"validation"` or `"test"` re-creates the run's own
            split of `data_dir` (same seed and fractions) and evaluates that
            part. Defaults to `"all"`.
        batch_size: int. Defaults to `32`.
        verify: bool. Refuse a run whose files changed since it was saved
            (see `load`). Defaults to `True`.
        verbose: int. Defaults to `1`.

    Returns:
        dict: the metrics of `evaluation.evaluate`, with `data_dir` and
        `split`.

    Raises:
        ValueError: for a split the run did not make, or class folders the
            run does not know.
    """
    classifier = load(run, verify=verify)
    held_out = read_held_out(run, classifier, data_dir, split=split, batch_size=batch_size, verbose=verbose)
    metrics = evaluate(classifier, held_out.dataset)
    metrics = {"data_dir": str(data_dir), "split": split, **metrics}
    write_metrics(run, metrics)
    return metrics
