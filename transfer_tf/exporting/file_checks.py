"""Each file `export` wrote, run in its own runtime on the held-out images: its row of the report."""

import shutil
import time

from transfer_tf.core.integrity import checksum
from transfer_tf.exporting.artefacts import CONVERTED_FORMATS
from transfer_tf.exporting.parity import batched_scores, compare, latency_fields
from transfer_tf.exporting.runtimes import THREAD_CONTROL

_UNCHECKED = dict.fromkeys(("agreement", "max_abs_diff", "mean_abs_diff", "accuracy", "balanced_accuracy",
                            "latency_ms", "latency_p90_ms", "latency_1_thread_ms", "latency_1_thread_p90_ms"))


def write_and_check(artefacts, folder, held_out, task, *, latency_repeats, max_accuracy_drop, asked_for, skipped,
                    say, outside):
    """Writes each artefact into `folder` and checks it; returns one row per file, the Keras model's first.

    Args:
        artefacts: the artefacts, the Keras model first (the reference).
        folder: path. The staging folder of the export.
        held_out: `(images, labels, split name)`.
        task: str. The classifier's task.
        latency_repeats: int. Timed runs per thread count.
        max_accuracy_drop: float or `None`. Points of accuracy a file may lose.
        asked_for: the `formats` the caller named, or `None` for the default.
        skipped: list. Gets a line for each ONNX/OpenVINO file that could
            not be made under the default formats.
        say: callable printing progress.
        outside: dict. Artefact name to the folder it is written to instead,
            unchecked and left out of the rows (the SavedModel that TFLite
            is converted from, when it was not asked for).

    Raises:
        ValueError: for an ONNX/OpenVINO file asked for by name that could not be made or run.
    """
    rows, reference = [], None
    for artefact in artefacts:
        start = time.perf_counter()
        if artefact.name in outside:
            artefact.write(outside[artefact.name])
            continue
        try:
            path = artefact.write(folder)
            row, scores = _parity_row(artefact, path, reference, held_out, task, latency_repeats)
        except Exception as error:
            if artefact.format not in CONVERTED_FORMATS:
                raise
            message = _unmade(artefact, error)
            if asked_for is not None:  # asked for by name: never skipped silently
                raise ValueError(f"{message} Received: formats={list(asked_for)}") from None
            _remove(folder / artefact.file.split("/")[0])
            skipped.append(message)
            say(f"  {message}")
            continue
        reference = scores if reference is None else reference  # the Keras model's, first
        rows.append(_judged(row, rows[0] if rows else row, max_accuracy_drop))
        if row["agreement"] is None:
            say(f"  warning: {artefact.file} uses Flex ops {artefact.flex_ops}: not checked here, "
                "and LiteRT on Android/iOS runs it only with the Flex delegate linked.")
        say(f"  {artefact.file} written and checked ({time.perf_counter() - start:.1f} s)")
    return rows


def _parity_row(artefact, path, reference, held_out, task, latency_repeats):
    """The artefact on the held-out images against the reference scores (its own, for the Keras model)."""
    images, labels, _ = held_out
    row = {"artefact": artefact.name, "format": artefact.format, "file": artefact.file,
           "size_bytes": _size_of(path), "sha256": None if path.is_dir() else checksum(path)}
    run = artefact.runner()
    if run is None:
        return {**row, **_UNCHECKED}, None
    scores = batched_scores(run, images)
    reference = scores if reference is None else reference
    row.update(compare(reference, scores, labels, task))
    one_core = (lambda: artefact.runner(threads=1)) if artefact.format in THREAD_CONTROL else None
    row.update(latency_fields(run, one_core, images[:1], latency_repeats))
    return row, scores


def _unmade(artefact, error):
    """One line saying why an ONNX or OpenVINO file could not be made or run."""
    detail = " ".join(str(error).split())
    detail = detail if len(detail) <= 300 else detail[:300] + " ..."
    return (f"{artefact.format}: not made, the model does not convert or does not run in its runtime "
            f"({type(error).__name__}: {detail}).")


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _judged(row, keras_row, max_accuracy_drop):
    """The row with `failing`: whether it lost more held-out accuracy than allowed (`None` when not judged)."""
    failing = None
    if max_accuracy_drop is not None and row["accuracy"] is not None and keras_row["accuracy"] is not None:
        failing = 100 * (keras_row["accuracy"] - row["accuracy"]) > max_accuracy_drop
    return {**row, "failing": failing}


def _size_of(path):
    """Bytes of a file, or of every file in a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
