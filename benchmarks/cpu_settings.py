"""TensorFlow's CPU settings, measured: oneDNN on or off, thread counts, on both kinds of x86 CPU.

Each setting runs in its own process (TensorFlow reads these variables once,
when it loads) and times three steps of transfer_tf's work on random data:

- `forward`: the frozen base over a batch (the caching pass), VGG16 at 64 px;
- `phase2_vgg16`: a training step of block5 + head on cached activations;
- `phase2_resnet50`: a training step of conv5 + head on cached activations.

Settings:

- `tf_default`: nothing set; TensorFlow's own choice (oneDNN on only for
  CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX);
- `onednn_off`, `onednn_on`: `TF_ENABLE_ONEDNN_OPTS=0` / `1`;
- `onednn_on_avx2`: oneDNN on, limited to AVX2 code (`ONEDNN_MAX_CPU_ISA=AVX2`).
  On an AVX-512 machine, `onednn_off` and `onednn_on_avx2` stand in for an
  AVX2-only CPU with TensorFlow's default and with transfer_tf's: the
  PyPI TensorFlow's own kernels use no AVX2 either way, and oneDNN's
  AVX2 kernels are those it would pick there (the microarchitecture differs);
- `threads_2_1`, `threads_1_1`: oneDNN on, intra-op / inter-op threads.

    python benchmarks/cpu_settings.py                 # all settings, 5 repeats of 20 steps
    python benchmarks/cpu_settings.py --settings onednn_off onednn_on --repeats 3

Writes `benchmarks/results/cpu_settings.json` with the CPU's flags and
prints medians (ms per step) and each setting's ratio to `onednn_off`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import write_results

RESULTS = Path(__file__).parent / "results" / "cpu_settings.json"
SETTINGS = {
    "tf_default": {},
    "onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "onednn_on": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "onednn_on_avx2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "threads_2_1": {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_NUM_INTRAOP_THREADS": "2",
                    "TF_NUM_INTEROP_THREADS": "1"},
    "threads_1_1": {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_NUM_INTRAOP_THREADS": "1",
                    "TF_NUM_INTEROP_THREADS": "1"},
}
WORKLOADS = ("forward", "phase2_vgg16", "phase2_resnet50")
TOP = {"vgg16": "block5", "resnet50": "conv5"}


def worker(steps, batch, image_size):
    """Times each workload in this process; prints one JSON line."""
    import transfer_tf as ttf
    from transfer_tf.core import cpu_settings
    from transfer_tf.model.freezing import unfreeze_top_blocks

    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    timings = {}

    def timed(step):
        for _ in range(3):  # warm-up: tracing and first allocations
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return 1000 * (time.perf_counter() - start) / steps

    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=10, image_size=image_size, weights=None)
    images = rng.uniform(0, 255, (batch, image_size, image_size, 3)).astype("float32")

    @tf.function
    def run_base(x):
        return clf.base(clf.preprocessor(x), training=False)

    timings["forward"] = timed(lambda: run_base(images).numpy())
    for backbone in ("vgg16", "resnet50"):
        model = ttf.ImageClassifier.from_backbone(backbone, num_classes=10, image_size=image_size,
                                                  weights=None)
        _, top = ttf.split_base(model.base, model.backbone_spec, TOP[backbone])
        unfreeze_top_blocks(model, 1)  # the top block, BatchNorm frozen, as phase 2 has it
        inputs = keras.Input(top.input.shape[1:])
        trainable = keras.Model(inputs, model.head(top(inputs, training=False)))
        trainable.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy")
        x = rng.normal(size=(batch, *top.input.shape[1:])).astype("float32")
        y = rng.integers(0, 10, batch)
        timings[f"phase2_{backbone}"] = timed(lambda: trainable.train_on_batch(x, y))
    print(json.dumps({"ms_per_step": timings, "machine": cpu_settings.cpu_summary()}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.steps, args.batch, args.image_size)
        return
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS",
                             "TF_NUM_INTEROP_THREADS")}
    base_env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    runs = {name: [] for name in args.settings}
    machine = {}
    for repeat in range(args.repeats):
        for name in args.settings:  # interleaved, so drift of the machine hits every setting alike
            env = {**base_env, **SETTINGS[name]}
            if name == "tf_default":
                env["TRANSFER_TF_CPU_DEFAULTS"] = "0"  # transfer_tf leaves TensorFlow's choice
            done = subprocess.run(
                [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--batch",
                 str(args.batch), "--image-size", str(args.image_size)],
                capture_output=True, text=True, env=env)
            if done.returncode:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].append(result["ms_per_step"])
            machine[name] = result["machine"]
            print(f"repeat {repeat + 1} {name:<16}" + "  ".join(
                f"{w} {result['ms_per_step'][w]:7.1f} ms" for w in WORKLOADS), flush=True)
    medians = {name: {w: statistics.median(r[w] for r in rs) for w in WORKLOADS} for name, rs in runs.items()}
    reference = medians.get("onednn_off")
    record = {
        "settings": {name: SETTINGS[name] for name in args.settings},
        "steps": args.steps, "batch": args.batch, "image_size": args.image_size, "repeats": args.repeats,
        "median_ms_per_step": medians,
        "speedup_over_onednn_off": None if reference is None else {
            name: {w: reference[w] / m[w] for w in WORKLOADS} for name, m in medians.items()},
        "machine_per_setting": machine, "runs": runs,
    }
    write_results(args.out, "cpu_settings.py", argv, record, machine=machine[args.settings[0]])
    print("\n| setting | oneDNN | " + " | ".join(WORKLOADS) + " |")
    print("|---|---|" + "---|" * len(WORKLOADS))
    for name, m in medians.items():
        ratio = record["speedup_over_onednn_off"]
        cells = [f"{m[w]:.0f} ms" + (f" ({ratio[name][w]:.2f}x)" if ratio else "") for w in WORKLOADS]
        print(f"| {name} | {machine[name]['onednn_enabled']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
