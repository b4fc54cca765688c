"""The run report: plots, metrics and settings of a run folder in one Markdown page.

`write_report` evaluates the run's classifier on its validation (and test)
images, writes the plots under `RUN/plots/`, the held-out metrics to
`RUN/metrics.json` and `RUN/report.md`, which links only files it wrote.
"""

from pathlib import Path

from transfer_tf import plots
from transfer_tf.evaluation import format_metrics, predict_dataset, prediction_metrics
from transfer_tf.runs import load
from transfer_tf.run_data import run_data
from transfer_tf.saving import (
    CONFIG_FILE, DATA_FILE, HISTORY_FILE, LABELS_FILE, METRICS_FILE, MODEL_FILE, read_json,
    write_metrics,
)

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
HISTORY_PLOT = "history.png"
CONFUSION_PLOT = "confusion_matrix.png"
MISTAKES_PLOT = "misclassified.png"
DISTRIBUTION_PLOT = "class_distribution.png"
MAX_MISTAKES = 16


def write_report(run, splits, *, classifier=None, max_mistakes=MAX_MISTAKES, verbose=True):
    """Writes the plots, `metrics.json` and `report.md` of a run folder.

    Args:
        run: str or path. A run folder written by `save` or `train_run`.
        splits: `ImageSplits` the run was trained on (e.g. from
            `data.from_directory`), or `None` to report without metrics.
        classifier: `ImageClassifier` or `None`. The run's model; loaded from
            `run` when `None`. Defaults to `None`.
        max_mistakes: int. Misclassified validation images shown. Defaults
            to `16`.
        verbose: bool. Print what is being written. Defaults to `True`.

    Returns:
        The path of `report.md`.

    Raises:
        FileNotFoundError: if `run` is not a complete run folder.
        ValueError: if the splits' classes differ from the classifier's.

    Examples:

        >>> classifier.save("runs/shapes")              # doctest: +SKIP
        >>> write_report("runs/shapes", splits)         # doctest: +SKIP
        PosixPath('runs/shapes/report.md')
    """
    run = Path(run)
    config = read_json(run / CONFIG_FILE)
    classifier = load(run) if classifier is None else classifier
    if splits is not None and list(splits.class_names) != list(classifier.class_names):
        raise ValueError(
            f"The data's classes {list(splits.class_names)} differ from the run's "
            f"{list(classifier.class_names)}; pass the splits the run was trained on."
        )
    record = classifier.training_record
    plot_files = {}

    def draw(title, name, plot, *args, **kwargs):
        plot(*args, path=run / PLOTS_DIR / name, **kwargs)
        plot_files[title] = f"{PLOTS_DIR}/{name}"

    if record is not None and any(phase.epochs for phase in record.phases):
        draw("Training curves", HISTORY_PLOT, plots.plot_history, record)
    evaluations = {}
    if splits is not None:
        draw("Class distribution", DISTRIBUTION_PLOT, plots.plot_class_distribution,
             splits.counts, splits.class_names)
        for split in ("validation", "test"):
            dataset = getattr(splits, split)
            if dataset is None:
                continue
            if verbose:
                print(f"Report: evaluating on the {split} images ...")
            predictions = predict_dataset(
                classifier, dataset, keep_mistakes=max_mistakes if split == "validation" else 0)
            evaluations[split] = prediction_metrics(classifier, predictions)
            if split == "validation":
                if classifier.task != "multilabel":
                    draw("Confusion matrix (validation)", CONFUSION_PLOT,
                         plots.plot_confusion_matrix, evaluations[split])
                names = [p for p, _ in splits.files["validation"]] if splits.files else None
                draw("Misclassified validation images", MISTAKES_PLOT, plots.plot_mistakes,
                     predictions, classifier.class_names, names=names)
    if evaluations:
        held_out = "test" if "test" in evaluations else "validation"
        write_metrics(run, {"split": held_out, **evaluations[held_out]})
    data = splits.to_dict() if splits is not None else run_data(run)
    text = report_markdown(run, config, record, data, evaluations, plot_files)
    path = run / REPORT_FILE
    partial = run / f".{REPORT_FILE}.partial"
    partial.write_text(text)
    partial.replace(path)
    if verbose:
        print(f"Report: wrote {path}")
    return path


def report_markdown(run, config, record, data, evaluations, plot_files):
    """The Markdown text of the report; every link points to a file in `run`."""
    lines = [f"# Run report: {run.name}", ""]
    lines += _model_section(config)
    lines += _data_section(data)
    lines += _training_section(record)
    lines += _metrics_section(evaluations)
    if plot_files:
        lines += ["## Plots", ""]
        for title, file in plot_files.items():
            lines += [f"### {title}", "", f"![{title}]({file})", ""]
    lines += ["## Files", ""]
    described = (
        (MODEL_FILE, "the Keras model (load with `transfer_tf.load`)"),
        (LABELS_FILE, "class names, one per line"), (CONFIG_FILE, "model and training settings"),
        (HISTORY_FILE, "metrics per epoch and phase"), (DATA_FILE, "data source, split and counts"),
        (METRICS_FILE, "held-out metrics"),
    )
    lines += [f"- [{name}]({name}): {what}" for name, what in described if (run / name).is_file()]
    return "\n".join(lines) + "\n"


def _model_section(config):
    training = config.get("training") or {}
    rows = [
        ("backbone", config.get("backbone")), ("weights", config.get("weights")),
        ("image size", " x ".join(map(str, config.get("image_size", [])))),
        ("dtype policy", config.get("dtype_policy", "not recorded")),
        ("task", config.get("task")), ("classes", ", ".join(config.get("class_names", []))),
        *((key.replace("_", " "), value) for key, value in training.items()),
    ]
    return ["## Model and settings", "", "| setting | value |", "|---|---|",
            *(f"| {k} | {_cell(v)} |" for k, v in rows), ""]


def _data_section(data):
    if not data:
        return ["## Data", "", "No data summary was recorded for this run.", ""]
    counts = data["counts"]
    splits = [s for s in counts if sum(counts[s])]
    lines = ["## Data", ""]
    source = data.get("source") or {}
    if source:
        lines += [f"Source: {_cell(source)}", ""]
    lines += ["| class | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for i, name in enumerate(data["class_names"]):
        lines.append(f"| {_cell(name)} | " + " | ".join(str(counts[s][i]) for s in splits) + " |")
    lines.append("| **total** | " + " | ".join(str(sum(counts[s])) for s in splits) + " |")
    skipped = data.get("skipped") or []
    lines += ["", f"Skipped unreadable files: {len(skipped)}" + (":" if skipped else "."), ""]
    lines += [f"- `{item['path']}`: {item['reason']}" for item in skipped]
    return lines + ([""] if skipped else [])


def _training_section(record):
    if record is None:
        return ["## Training", "", "This model has no training record.", ""]
    lines = ["## Training", "", "| phase | epochs | learning rate | trainable blocks | "
             "trainable parameters | time | best validation accuracy |", "|---|---|---|---|---|---|---|"]
    for phase in record.phases:
        best = phase.best.get("val_accuracy")
        lines.append(
            f"| {phase.name} | {phase.epochs} | {phase.learning_rate:g} | "
            f"{', '.join(phase.trainable_blocks) or 'none (head only)'} | "
            f"{phase.trainable_params:,} | {phase.seconds:.1f} s | "
            f"{'n/a' if best is None else f'{best:.1%}'} |"
        )
    total = sum(phase.seconds for phase in record.phases)
    lines += ["", f"Total training time: {total:.1f} s."]
    cache = record.cache or {}
    if cache.get("used"):
        how = "reused" if cache["reused"] else f"computed in {cache['seconds']:.1f} s"
        lines.append(
            f"Feature cache: {', '.join(cache['phases'])} trained on tensors the frozen base computed "
            f"once ({cache['megabytes']:,.1f} MB, {cache['location']}, {how}).")
    elif cache.get("reason"):
        lines.append(f"Feature cache not used: {cache['reason']}.")
    return lines + [""]


def _metrics_section(evaluations):
    if not evaluations:
        return ["## Metrics", "", "Not computed: no validation or test images were given.", ""]
    lines = ["## Metrics", ""]
    for split, metrics in evaluations.items():
        lines += [f"### {split.capitalize()}", "", "```", format_metrics(metrics), "```", ""]
    return lines


def _cell(value):
    if isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value).replace("|", "\\|")
