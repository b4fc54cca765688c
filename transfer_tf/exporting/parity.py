"""Parity of exported artefacts with the Keras model: scores, accuracy, latency."""

import os
import statistics
import time

import numpy as np

from transfer_tf.evaluation import metrics

SCORE_BATCH = 32
WARMUP_RUNS = 3


def litert_interpreter(model_bytes, threads=None):
    """A LiteRT interpreter using `threads` cores (`None`: every core)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_bytes, num_threads=threads or os.cpu_count())


def tflite_runner(model_bytes, threads=None):
    """A function from a batch of raw float images to a `.tflite` classifier's float scores.

    Quantized (uint8) inputs and outputs are converted with the tensors'
    own scale and zero point.
    """
    return _interpreter_runner(litert_interpreter(model_bytes, threads))


def tflite_scores(model_bytes, images):
    """Runs a `.tflite` classifier on raw float images; returns float scores."""
    return batched_scores(tflite_runner(model_bytes), images)


def batched_scores(runner, images):
    """A runner's scores for every image, `SCORE_BATCH` at a time."""
    return np.concatenate([np.asarray(runner(images[i:i + SCORE_BATCH]))
                           for i in range(0, len(images), SCORE_BATCH)])


def latency_ms(fn, repeats):
    """`(median, 90th percentile)` wall time of `fn()` in ms over `repeats` calls, after a warm-up."""
    for _ in range(WARMUP_RUNS):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), 1000 * float(np.percentile(times, 90))


def latency_fields(run, open_single_core, image, repeats):
    """`latency_ms`, `latency_p90_ms` of `run(image)`, and the same on one core (`latency_1_thread_*`).

    `open_single_core()` gives the runner held to one core, or is `None`
    where the runtime cannot be told (those fields are then `None`).
    """
    fields = dict(zip(("latency_ms", "latency_p90_ms"), latency_ms(lambda: run(image), repeats)))
    fields["latency_1_thread_ms"] = fields["latency_1_thread_p90_ms"] = None
    if open_single_core is not None:
        single = open_single_core()
        fields.update(zip(("latency_1_thread_ms", "latency_1_thread_p90_ms"),
                          latency_ms(lambda: single(image), repeats)))
    return fields


def compare(reference, scores, labels, task):
    """Agreement and score differences against the reference, and accuracy.

    Args:
        reference: array `(N, classes)`. The Keras model's scores.
        scores: array `(N, classes)`. The artefact's scores.
        labels: array or `None`. Class indices `(N,)`, or multi-hot
            `(N, classes)` for multilabel.
        task: str. The classifier's task.

    Returns:
        dict with `agreement` (top-1), `max_abs_diff`, `mean_abs_diff`,
        `accuracy` (top-1; per-label at 0.5 for multilabel; `None` without
        labels) and `balanced_accuracy` (the mean recall of the classes
        present; `None` for multilabel or without labels).
    """
    diff = np.abs(np.asarray(scores, np.float64) - np.asarray(reference, np.float64))
    return {
        "agreement": float(np.mean(scores.argmax(-1) == reference.argmax(-1))),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "accuracy": accuracy(scores, labels, task),
        "balanced_accuracy": balanced_accuracy(scores, labels, task),
    }


def accuracy(scores, labels, task):
    if labels is None:
        return None
    if task == "multilabel":
        return float(np.mean((scores >= 0.5) == (np.asarray(labels) >= 0.5)))
    return float(np.mean(scores.argmax(-1) == np.asarray(labels)))


def balanced_accuracy(scores, labels, task):
    if labels is None or task == "multilabel":
        return None
    return metrics.balanced_accuracy(labels, scores.argmax(-1))


def format_parity(rows):
    """A table of the rows, one line per artefact: held-out accuracy, agreement, size, latency.

    Latency is per image at batch 1, median (90th percentile) in ms, on every
    core and on one (`-` where the runtime cannot be held to one core). A row
    whose `agreement` is `None` (a file with Flex ops, which cannot run here)
    is shown as not run; a row marked `failing` ends with `FAILING`.
    """
    header = (f"{'artefact':<22}{'size':>10}{'accuracy':>10}{'balanced':>10}{'agreement':>11}{'max diff':>10}"
              f"{'latency, all cores':>22}{'latency, 1 core':>20}")
    lines = [header]
    for row in rows:
        if row["agreement"] is None:
            lines.append(f"{row['artefact']:<22}{_size(row['size_bytes']):>10}   not run: needs Flex ops")
            continue
        lines.append(
            f"{row['artefact']:<22}{_size(row['size_bytes']):>10}{_share(row['accuracy']):>10}"
            f"{_share(row.get('balanced_accuracy')):>10}{row['agreement']:>11.2%}{row['max_abs_diff']:>10.1e}"
            f"{format_latency(row['latency_ms'], row.get('latency_p90_ms')):>22}"
            f"{format_latency(row.get('latency_1_thread_ms'), row.get('latency_1_thread_p90_ms')):>20}"
            + ("  FAILING" if row.get("failing") else "")
        )
    return "\n".join(lines)


def _share(value):
    return "n/a" if value is None else f"{value:.1%}"


def format_latency(median, p90):
    """`median (p90) ms`, or `-` when not measured."""
    if median is None:
        return "-"
    return f"{median:.2f} ms" if p90 is None else f"{median:.2f} ({p90:.2f}) ms"


def _size(count):
    return f"{count / 1e6:.2f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"


def _interpreter_runner(interpreter):
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    allocated = [None]

    def run(batch):
        if allocated[0] != len(batch):
            interpreter.resize_tensor_input(source["index"], [len(batch), *source["shape"][1:]])
            interpreter.allocate_tensors()
            allocated[0] = len(batch)
        interpreter.set_tensor(source["index"], _quantize(batch, source))
        interpreter.invoke()
        return _dequantize(interpreter.get_tensor(target["index"]), target)

    return run


def _quantize(images, detail):
    if detail["dtype"] == np.float32:
        return np.asarray(images, np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    values = np.round(np.asarray(images, np.float32) / scale + zero_point)
    return np.clip(values, info.min, info.max).astype(detail["dtype"])


def _dequantize(values, detail):
    if detail["dtype"] == np.float32:
        return values
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale
