"""The run report: plots, metrics and settings of a run folder, as Markdown and as one HTML page.

`write_report` evaluates the run's classifier on its validation (and test)
images, writes the plots under `RUN/plots/`, the error analysis under
`RUN/interpretation/`, the held-out metrics to `RUN/metrics.json`,
`RUN/report.md` (which links only files it wrote) and `RUN/report.html`
(the same, self-contained, its confusion matrix opening its images).
"""

from pathlib import Path

from transfer_tf.core.integrity import write_text_atomically
from transfer_tf.evaluation import plots
from transfer_tf.evaluation.auto_tables import auto_tables
from transfer_tf.evaluation.calibration import CalibrationResult, calibration_lines
from transfer_tf.evaluation.interpretation import Interpretation, file_reader
from transfer_tf.evaluation.interpretation_plots import INTERPRETATION_FILES, write_interpretation
from transfer_tf.evaluation.predictions import (
    format_metrics,
    predict_dataset,
    prediction_metrics,
    predictions_from_outputs,
)
from transfer_tf.evaluation.report_page import write_report_page
from transfer_tf.methods.loading import load
from transfer_tf.model.run_data import run_data
from transfer_tf.model.saving import (
    AUTO_FILE,
    CALIBRATION_FILE,
    CONFIG_FILE,
    DATA_FILE,
    HISTORY_FILE,
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    read_json,
    write_metrics,
)

REPORT_FILE = "report.md"
PAGE_FILE = "report.html"
PLOTS_DIR = "plots"
HISTORY_PLOT = "history.png"
CONFUSION_PLOT = "confusion_matrix.png"
MISTAKES_PLOT = "misclassified.png"
DISTRIBUTION_PLOT = "class_distribution.png"
RELIABILITY_PLOT = "reliability.png"
MAX_MISTAKES = 16
INTERPRETATION_DIR = "interpretation"


def write_report(run, splits, *, classifier=None, max_mistakes=MAX_MISTAKES, validation_outputs=None,
                 verbose=True):
    """Writes the plots, `metrics.json`, `report.md` and `report.html` of a run folder.

    Args:
        run: str or path. A run folder written by `save` or `train_run`.
        splits: `ImageSplits` the run was trained on (e.g. from
            `data.from_directory`), or `None` to report without metrics.
        classifier: `ImageClassifier` or `None`. The run's model; loaded from
            `run` when `None`. Defaults to `None`.
        max_mistakes: int. Misclassified validation images shown. Defaults
            to `16`.
        validation_outputs: `HeldOutOutputs` or `None`. The head's outputs
            on the validation images, left by training
            (`FineTuneResult.validation_outputs`): the report then runs no
            model over them and decodes only the mistakes it shows. Ignored
            unless they belong to `splits.validation`. Defaults to `None`.
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
    evaluations, analysis = {}, None
    if splits is not None:
        draw("Class distribution", DISTRIBUTION_PLOT, plots.plot_class_distribution,
             splits.counts, splits.class_names)
        for split in ("validation", "test"):
            dataset = getattr(splits, split)
            if dataset is None:
                continue
            keep = max_mistakes if split == "validation" else 0
            predictions = predictions_from_outputs(
                classifier, dataset, validation_outputs, keep_mistakes=keep) if split == "validation" else None
            if predictions is None:
                if verbose:
                    print(f"Report: evaluating on the {split} images ...")
                predictions = predict_dataset(classifier, dataset, keep_mistakes=keep)
            evaluations[split] = prediction_metrics(classifier, predictions)
            if split == "validation":
                if classifier.task != "multilabel":
                    draw("Confusion matrix (validation)", CONFUSION_PLOT,
                         plots.plot_confusion_matrix, evaluations[split])
                names = [p for p, _ in splits.files["validation"]] if splits.files else None
                draw("Misclassified validation images", MISTAKES_PLOT, plots.plot_mistakes,
                     predictions, classifier.class_names, names=names)
                if classifier.task != "multilabel" and names is not None:
                    analysis, written = _interpretation(run, classifier, splits, predictions, names, verbose)
                    plot_files.update(written)
    calibration = read_json(run / CALIBRATION_FILE) if (run / CALIBRATION_FILE).is_file() else None
    if calibration is not None:
        draw("Reliability before and after calibration (validation)", RELIABILITY_PLOT,
             plots.plot_reliability, CalibrationResult(**calibration))
    if evaluations:
        held_out = "test" if "test" in evaluations else "validation"
        write_metrics(run, {"split": held_out, **evaluations[held_out]})
    data = splits.to_dict() if splits is not None else run_data(run)
    auto = read_json(run / AUTO_FILE) if (run / AUTO_FILE).is_file() else None
    text = report_markdown(run, config, record, data, evaluations, plot_files, calibration, auto)
    write_report_page(run / PAGE_FILE, f"Run report: {run.name}",
                      report_tables(config, record, data, calibration, auto),
                      {split: format_metrics(m) for split, m in evaluations.items()}, plot_files, analysis)
    path = write_text_atomically(run / REPORT_FILE, text)
    if verbose:
        print(f"Report: wrote {path} and {run / PAGE_FILE}")
    return path


def _interpretation(run, classifier, splits, predictions, names, verbose):
    """The error analysis of the validation images (see `interpret`): its plots, by title."""
    if verbose:
        print("Report: top losses with Grad-CAM, most-confused classes ...")
    reader = file_reader(names, classifier.image_size, splits.source.get("resize", "stretch"))
    analysis = Interpretation.from_predictions(predictions, classifier.class_names, names, reader)
    written = write_interpretation(classifier, analysis, run / INTERPRETATION_DIR)
    return analysis, {
        "Top losses with Grad-CAM (validation)": f"{INTERPRETATION_DIR}/{written['top_losses'].name}",
        "Most-confused classes (validation)": f"{INTERPRETATION_DIR}/{written['most_confused'].name}",
    }


def report_tables(config, record, data, calibration=None, auto=None):
    """The report's tables, each `(heading, header, rows, note)`: settings, data, training, calibration, auto."""
    tables = [_model_table(config), _data_table(data), _training_table(record)]
    tables += [] if calibration is None else [_calibration_table(calibration)]
    return tables + ([] if auto is None else auto_tables(auto))


def report_markdown(run, config, record, data, evaluations, plot_files, calibration=None, auto=None):
    """The Markdown text of the report; every link points to a file in `run`."""
    lines = [f"# Run report: {run.name}", ""]
    for heading, header, rows, note in report_tables(config, record, data, calibration, auto):
        lines += [f"## {heading}", ""]
        if rows:
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
            lines.append("")
        lines += [note, ""] if note else []
    lines += _metrics_section(evaluations)
    if plot_files:
        lines += ["## Plots", ""]
        for title, file in plot_files.items():
            lines += [f"### {title}", "", f"![{title}]({file})", ""]
    lines += ["## Files", ""]
    described = (
        (PAGE_FILE, "this report as one page a browser opens, the confusion matrix opening its images"),
        (MODEL_FILE, "the Keras model (load with `transfer_tf.load`)"),
        (LABELS_FILE, "class names, one per line"), (CONFIG_FILE, "model and training settings"),
        (HISTORY_FILE, "metrics per epoch and phase"), (DATA_FILE, "data source, split and counts"),
        (METRICS_FILE, "held-out metrics"),
        (CALIBRATION_FILE, "the temperature and the 'unknown' threshold, fitted on the validation images"),
        (AUTO_FILE, "what `transfer-tf auto` tried, measured and chose"),
        (f"{INTERPRETATION_DIR}/{INTERPRETATION_FILES['table']}",
         "every validation image: true and predicted class, loss, probabilities (highest loss first)"),
    )
    lines += [f"- [{name}]({name}): {what}" for name, what in described if (run / name).is_file()]
    return "\n".join(lines) + "\n"


def _calibration_table(calibration):
    rows = [("temperature", f"{calibration['temperature']:.4f}"),
            ("expected calibration error", f"{calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}"),
            ("negative log-likelihood", f"{calibration['nll_before']:.4f} -> {calibration['nll_after']:.4f}")]
    if calibration["unknown_threshold"] is not None:
        rows += [("'unknown' below a top probability of", f"{calibration['unknown_threshold']:.4f}"),
                 ("validation images kept", f"{calibration['kept']:.1%} (asked: {calibration['known_kept']:.0%})")]
    return ("Calibration (validation images)", ["measure", "value"], rows,
            " ".join(calibration_lines(calibration)) + " The held-out metrics use the calibrated "
            "probabilities; top-1 predictions do not change.")


def _model_table(config):
    training = config.get("training") or {}
    rows = [
        ("backbone", config.get("backbone")), ("weights", config.get("weights")),
        ("image size", " x ".join(map(str, config.get("image_size", [])))),
        ("dtype policy", config.get("dtype_policy", "not recorded")),
        ("task", config.get("task")), ("classes", ", ".join(config.get("class_names", []))),
        *((key.replace("_", " "), value) for key, value in training.items()),
    ]
    return "Model and settings", ["setting", "value"], rows, ""


def _data_table(data):
    if not data:
        return "Data", [], [], "No data summary was recorded for this run."
    counts = data["counts"]
    splits = [s for s in counts if sum(counts[s])]
    rows = [(name, *(counts[s][i] for s in splits)) for i, name in enumerate(data["class_names"])]
    rows.append(("total", *(sum(counts[s]) for s in splits)))
    source = dict(data.get("source") or {})
    excluded = source.pop("excluded", None)
    not_found = source.pop("exclusions_not_found", 0)
    skipped = data.get("skipped") or []
    notes = [f"Source: {_plain(source)}."] if source else []
    notes.append(f"Skipped unreadable files: {len(skipped)}" + (
        ": " + "; ".join(f"{item['path']} ({item['reason']})" for item in skipped) + "." if skipped else "."))
    if excluded is not None:
        notes.append(f"Left out by the exclusion list: {len(excluded)} file(s)"
                     + (": " + ", ".join(excluded) if excluded else "")
                     + f" ({not_found} of its paths not in the folder).")
    return "Data", ["class", *splits], rows, " ".join(notes)


def _training_table(record):
    if record is None:
        return "Training", [], [], "This model has no training record."
    header = ["phase", "epochs", "learning rate", "trainable blocks", "trainable parameters", "time",
              "best validation accuracy"]
    rows = []
    for phase in record.phases:
        best = phase.best.get("val_accuracy")
        rows.append((phase.name, phase.epochs, f"{phase.learning_rate:g}",
                     ", ".join(phase.trainable_blocks) or "none (head only)", f"{phase.trainable_params:,}",
                     f"{phase.seconds:.1f} s", "n/a" if best is None else f"{best:.1%}"))
    notes = [f"Total training time: {sum(phase.seconds for phase in record.phases):.1f} s."]
    cache = record.cache or {}
    if cache.get("used"):
        how = "reused" if cache["reused"] else f"computed in {cache['seconds']:.1f} s"
        notes.append(
            f"Feature cache: {', '.join(cache['phases'])} trained on tensors the frozen base computed "
            f"once ({cache['megabytes']:,.1f} MB, {cache['location']}, {how}).")
    elif cache.get("reason"):
        notes.append(f"Feature cache not used: {cache['reason']}.")
    return "Training", header, rows, " ".join(notes)


def _metrics_section(evaluations):
    if not evaluations:
        return ["## Metrics", "", "Not computed: no validation or test images were given.", ""]
    lines = ["## Metrics", ""]
    for split, metrics in evaluations.items():
        lines += [f"### {split.capitalize()}", "", "```", format_metrics(metrics), "```", ""]
    return lines


def _plain(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _cell(value):
    return _plain(value).replace("|", "\\|")
