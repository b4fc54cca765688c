"""`model_card.json`: what an app team needs to know about the exported files."""

from transfer_tf.exporting.saved_model import SERVING_INPUT, SERVING_OUTPUT
from transfer_tf.model.run_data import run_metrics
from transfer_tf.model.saving import package_versions


def model_card(classifier, trained, metadata, rows, artefacts, data, held_out, run):
    """The card's contents: names, input and output, held-out metrics, quantization, every file's checks."""
    from ai_edge_litert import __version__ as litert_version

    height, width = classifier.image_size
    record = classifier.training_record
    return {
        **{k: metadata[k] for k in ("name", "description", "version", "author")},
        "backbone": classifier.backbone_name,
        "task": classifier.task,
        "labels": list(classifier.class_names),
        "input": {
            "name": SERVING_INPUT, "shape": [1, height, width, 3], "channels": "RGB",
            "value_range": [0, 255],
            "dtype": "float32 (TFLite, ONNX, OpenVINO, SavedModel serving_default) or uint8 "
                     "(SavedModel serving_uint8, int8 TFLite with integer I/O)",
            "normalisation": f"inside the model ({classifier.preprocessing})",
            "resize": (data.source.get("resize", "stretch") if data is not None else "stretch"),
        },
        "output": {
            "name": SERVING_OUTPUT, "shape": [1, len(classifier.class_names)],
            "meaning": ("independent sigmoid scores" if classifier.task == "multilabel"
                        else "class probabilities"),
        },
        "calibration": _calibration(classifier),
        "metrics": {
            "held_out": {"split": held_out[2], "images": len(held_out[0]),
                         "keras_accuracy": rows[0]["accuracy"]},
            "run": None if run is None else run_metrics(run),
        },
        "training": None if record is None else record.settings,
        "quantization": [a.record() for a in artefacts if a.record() is not None],
        "files": {row["file"]: row["size_bytes"] for row in rows},
        "parity": rows,
        "trained_dtype_policy": trained.dtype_policy.name,
        "versions": {**package_versions(), "ai_edge_litert": litert_version},
    }


def _calibration(classifier):
    """The temperature inside every file, and the threshold an app applies to the top probability."""
    threshold = getattr(classifier, "unknown_threshold", None)
    return {
        "temperature": getattr(classifier, "temperature", 1.0),
        "unknown_threshold": threshold,
        "unknown_rule": None if threshold is None else (
            "answer 'unknown' when the highest class probability is below unknown_threshold "
            "(MediaPipe ImageClassifierOptions: score_threshold=unknown_threshold, max_results=1; "
            "an empty result means unknown)"),
    }


def describe(classifier):
    """A sentence naming the backbone, the input size and the classes."""
    height, width = classifier.image_size
    names = ", ".join(classifier.class_names[:10]) + (", ..." if classifier.num_classes > 10 else "")
    base = classifier.backbone_name or "custom"
    return (f"{base} image classifier fine-tuned with transfer_tf: {height}x{width} RGB images "
            f"(raw 0-255 pixels) to {classifier.num_classes} classes ({names}).")
