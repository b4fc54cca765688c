"""Parity of exported artefacts with the Keras model: scores, accuracy, latency."""

import os
import statistics
import time

import numpy as np

SCORE_BATCH = 32
WARMUP_RUNS = 3


def litert_interpreter(model_bytes):
    """A LiteRT interpreter using every CPU core."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_bytes, num_threads=os.cpu_count())


def tflite_runner(model_bytes):
    """A function from a batch of raw float images to a `.tflite` classifier's float scores.

    Quantized (uint8) inputs and outputs are converted with the tensors'
    own scale and zero point.
    """
    return _tflite_runner(litert_interpreter(model_bytes))


def tflite_scores(model_bytes, images):
    """Runs a `.tflite` classifier on raw float images; returns float scores."""
    return batched_scores(tflite_runner(model_bytes), images)


def batched_scores(runner, images):
    """A runner's scores for every image, `SCORE_BATCH` at a time."""
    return np.concatenate([np.asarray(runner(images[i:i + SCORE_BATCH]))
                           for i in range(0, len(images), SCORE_BATCH)])


def median_ms(fn, repeats):
    """Median wall time of `fn()` over `repeats` calls, after a warm-up."""
    for _ in range(WARMUP_RUNS):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def compare(reference, scores, labels, task):
    """Agreement and score differences against the reference, and accuracy.

    Args:
        reference: array `(N, classes)`. The Keras model's scores.
        scores: array `(N, classes)`. The artefact's scores.
        labels: array or `None`. Class indices `(N,)`, or multi-hot
            `(N, classes)` for multilabel.
        task: str. The classifier's task.

    Returns:
        dict with `agreement` (top-1), `max_abs_diff`, `mean_abs_diff` and
        `accuracy` (top-1; per-label at 0.5 for multilabel; `None` without
        labels).
    """
    diff = np.abs(np.asarray(scores, np.float64) - np.asarray(reference, np.float64))
    return {
        "agreement": float(np.mean(scores.argmax(-1) == reference.argmax(-1))),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "accuracy": accuracy(scores, labels, task),
    }


def accuracy(scores, labels, task):
    if labels is None:
        return None
    if task == "multilabel":
        return float(np.mean((scores >= 0.5) == (np.asarray(labels) >= 0.5)))
    return float(np.mean(scores.argmax(-1) == np.asarray(labels)))


def format_parity(rows):
    """A table of the parity rows, one line per artefact.

    A row whose `agreement` is `None` (a file with Flex ops, which cannot run
    here) is shown as not run.
    """
    header = (f"{'artefact':<26}{'size':>10}{'agreement':>11}{'max diff':>11}"
              f"{'mean diff':>11}{'accuracy':>10}{'latency':>11}")
    lines = [header]
    for row in rows:
        if row["agreement"] is None:
            lines.append(f"{row['artefact']:<26}{_size(row['size_bytes']):>10}   not run: needs Flex ops")
            continue
        acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.1%}"
        lines.append(
            f"{row['artefact']:<26}{_size(row['size_bytes']):>10}{row['agreement']:>11.2%}"
            f"{row['max_abs_diff']:>11.2e}{row['mean_abs_diff']:>11.2e}{acc:>10}"
            f"{row['latency_ms']:>8.2f} ms"
        )
    return "\n".join(lines)


def _size(count):
    return f"{count / 1e6:.2f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"


def _tflite_runner(interpreter):
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
