"""One trace where Keras makes two: of the training step (optimizer built first) and of inference.

Keras 3 creates the optimizer's variables (Adam's moments) inside the first
traced training step when no distribution strategy is set, and a
`tf.function` whose first call creates variables is traced twice. Every
phase of transfer_tf now builds the optimizer before its `fit`
(`training.phases.build_optimizer`). This times one bare Keras `fit` of a
whole classifier (1 epoch, every weight trainable, like a from-scratch phase
or the top blocks of phase 2), built each way, in a fresh process per run,
and counts the traces of the training step.

Inference alike: a `tf.function` traced on a full batch is traced again for
the last, smaller batch of a dataset. `--inference` times running the frozen
classifier over 500 images in batches of 32 (the last one of 20) with such a
function (as `predict_on_batch` did) against `model.inference.batch_function`,
traced once for any batch size.

Export alike: `--export` times writing `model.onnx` and `openvino/` after the
Keras row's check ran the serving model over a batch, with Keras's exporters
(`model.export(format=...)`, each tracing the network again, as `export` did)
against the converters fed the graph that check traced (`exporting.artefacts`).
`--tflite` times converting the written SavedModel to the four default TFLite
precisions (int8 calibrated on 64 images): from its folder
(`TFLiteConverter.from_saved_model`, which loads it three times per file, as
`export` did) against from its signature as the SavedModel's check loaded it.
`--saved-model` times writing the SavedModel with Keras's `ExportArchive`
tracking the model (which searches every layer for lookup tables, tracing
the network three times more) and each signature traced on its own, as
`export` did, against `exporting.saved_model.write_saved_model`.

    python benchmarks/first_trace.py                      # 3 backbones, 3 repeats
    python benchmarks/first_trace.py --inference
    python benchmarks/first_trace.py --export
    python benchmarks/first_trace.py --tflite
    python benchmarks/first_trace.py --saved-model
    python benchmarks/first_trace.py --backbones vgg16 --repeats 1

Writes `benchmarks/results/first_trace.json` (`first_trace_inference.json`, `first_trace_export.json`,
`first_trace_tflite.json`, `first_trace_saved_model.json`) with the CPU's flags.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import transfer_tf as ttf  # noqa: F401  (first: it sets TensorFlow's CPU options)

from _results import write_results

RESULTS = Path(__file__).parent / "results"
INFERENCE_WORKER = """
import transfer_tf as ttf
import json, sys, time
import numpy as np
import tensorflow as tf
from transfer_tf.model.inference import batch_function

backbone, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
images = np.random.default_rng(0).uniform(0, 255, (500, size, size, 3)).astype("float32")
clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=size, weights=None, seed=0)
if mode == "built":
    run = batch_function(clf)
else:
    function = tf.function(lambda x: clf(x, training=False), reduce_retracing=True)
    run = lambda x: function(tf.convert_to_tensor(x)).numpy()
started = time.perf_counter()
for start in range(0, len(images), 32):
    run(images[start:start + 32])
print(json.dumps({"seconds": time.perf_counter() - started}))
"""
EXPORT_WORKER = """
import transfer_tf as ttf
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
from transfer_tf.exporting.artefacts import OnnxArtefact, OpenVinoArtefact
from transfer_tf.exporting.saved_model import serving_model
from transfer_tf.model.inference import batch_function

backbone, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
images = np.random.default_rng(0).uniform(0, 255, (8, size, size, 3)).astype("float32")
clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=size, weights=None, seed=0)
serving = serving_model(clf)
serving_run = batch_function(serving)
serving_run(images)  # the Keras row's check, which export runs first either way
folder = Path(tempfile.mkdtemp())
started = time.perf_counter()
if mode == "built":
    for kind in (OnnxArtefact, OpenVinoArtefact):
        kind(serving_run, serving.input_shape[1:]).write(folder)
else:
    serving.export(str(folder / "model.onnx"), format="onnx", verbose=False)
    serving.export(str(folder / "openvino" / "model.xml"), format="openvino", verbose=False)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""
TFLITE_WORKER = """
import transfer_tf as ttf
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
import tensorflow as tf
from transfer_tf.exporting import tflite
from transfer_tf.exporting.artefacts import SavedModelArtefact
from transfer_tf.exporting.saved_model import serving_model

backbone, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
images = np.random.default_rng(0).uniform(0, 255, (64, size, size, 3)).astype("float32")
clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=size, weights=None, seed=0)
folder = Path(tempfile.mkdtemp())
saved_model = SavedModelArtefact(serving_model(clf), ["a", "b"])
saved_model.write(folder)  # and loaded for its check, which export runs first either way
if mode == "keras":  # the same converter settings, fed the folder instead of the function
    tf.lite.TFLiteConverter.from_concrete_functions = lambda *a, **k: tf.lite.TFLiteConverter.from_saved_model(
        str(folder / "saved_model"), signature_keys=["serving_default"])
started = time.perf_counter()
for name in tflite.PRECISIONS:
    config = ttf.TFLiteConfig.int8(num_calibration_images=64) if name == "int8" else ttf.TFLiteConfig(name)
    tflite.convert(saved_model.signature, config, images)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""
SAVED_MODEL_WORKER = """
import transfer_tf as ttf
import json, sys, tempfile, time
from pathlib import Path
import keras
import tensorflow as tf
from transfer_tf.exporting.saved_model import serving_model, write_saved_model

backbone, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=size, weights=None, seed=0)
serving = serving_model(clf)


def tracked_archive(model, class_names, directory):
    archive = keras.export.ExportArchive()
    archive.track(model)
    labels = tf.constant(list(class_names))
    scores = lambda images: {"probabilities": model(tf.cast(images, tf.float32), training=False)}
    for name, dtype in (("serving_default", tf.float32), ("serving_uint8", tf.uint8)):
        archive.add_endpoint(name, scores, input_signature=[tf.TensorSpec([None, size, size, 3], dtype, "images")])
    archive.add_endpoint("labels", tf.function(lambda: {"labels": labels}), input_signature=[])
    archive.write_out(str(directory), verbose=False)


started = time.perf_counter()
(write_saved_model if mode == "built" else tracked_archive)(serving, ["a", "b"], Path(tempfile.mkdtemp()) / "sm")
print(json.dumps({"seconds": time.perf_counter() - started}))
"""
WORKER = """
import transfer_tf as ttf
import json, sys, time
import numpy as np
from keras.src.backend.tensorflow import trainer
from transfer_tf.training.phases import build_optimizer

backbone, size, build = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "built"
traces = []
step = trainer.TensorFlowTrainer.train_step
trainer.TensorFlowTrainer.train_step = lambda self, data: traces.append(1) or step(self, data)
rng = np.random.default_rng(0)
x, y = rng.uniform(0, 255, (64, size, size, 3)).astype("float32"), np.arange(64) % 2
clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=size, weights=None, seed=0)
clf.base.trainable = True
clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
started = time.perf_counter()
if build:
    build_optimizer(clf)
clf.fit(x, y, batch_size=16, epochs=1, verbose=0)
print(json.dumps({"seconds": time.perf_counter() - started, "traces": len(traces)}))
"""

# What each kind times: its worker, the two columns (as before, as now), its results file, its flag's help.
KINDS = {
    "fit": (WORKER, ("Keras's first fit (traces)", "optimizer built first (traces)"), "first_trace.json", None),
    "inference": (INFERENCE_WORKER, ("a tf.function", "batch_function"), "first_trace_inference.json",
                  "time inference over 500 images instead of one fit"),
    "export": (EXPORT_WORKER, ("Keras's exporters", "the traced graph"), "first_trace_export.json",
               "time the ONNX and OpenVINO conversions instead"),
    "tflite": (TFLITE_WORKER, ("the SavedModel folder", "its loaded signature"), "first_trace_tflite.json",
               "time the four TFLite conversions instead"),
    "saved_model": (SAVED_MODEL_WORKER, ("the model tracked", "its variables"), "first_trace_saved_model.json",
                    "time writing the SavedModel instead"),
}


def run(backbone, size, mode, worker=WORKER):
    done = subprocess.run([sys.executable, "-c", worker, backbone, str(size), mode], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["mobilenetv3small", "resnet50", "efficientnet_lite0"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    kinds = parser.add_mutually_exclusive_group()
    for kind, (_, _, _, flag_help) in KINDS.items():
        if kind != "fit":
            kinds.add_argument(f"--{kind.replace('_', '-')}", action="store_true", help=flag_help)
    args = parser.parse_args(argv)
    kind = next((k for k in KINDS if getattr(args, k, False)), "fit")
    worker, (first, second), results, _ = KINDS[kind]
    rows = []
    for backbone in args.backbones:
        for repeat in range(args.repeats):
            for mode in ("keras", "built"):  # alternated, so drift in the machine's speed hits both
                rows.append({"backbone": backbone, "mode": mode, "repeat": repeat,
                             **run(backbone, args.image_size, mode, worker)})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n| backbone | {first} | {second} | ratio (range) |\n|---|---|---|---|")
    summary = {}
    for backbone in args.backbones:
        times = {m: [r["seconds"] for r in rows if r["backbone"] == backbone and r["mode"] == m]
                 for m in ("keras", "built")}
        traces = {m: next(r.get("traces", "-") for r in rows if r["backbone"] == backbone and r["mode"] == m)
                  for m in ("keras", "built")}
        ratios = [a / b for a, b in zip(times["keras"], times["built"])]
        summary[backbone] = {"keras_median": statistics.median(times["keras"]),
                             "built_median": statistics.median(times["built"]),
                             "ratio_median": statistics.median(ratios), "traces": traces}
        counts = {m: "" if traces[m] == "-" else f" ({traces[m]})" for m in traces}
        print(f"| {backbone} | {summary[backbone]['keras_median']:.1f} s{counts['keras']} | "
              f"{summary[backbone]['built_median']:.1f} s{counts['built']} | "
              f"{summary[backbone]['ratio_median']:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")
    write_results(RESULTS / results, "first_trace.py", argv,
                  {"image_size": args.image_size, "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
