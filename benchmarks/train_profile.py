"""Where a whole `transfer-tf train` run spends its time: start-up, the folder scan, training, the report.

Runs the CLI as a user would (`transfer-tf train DATA --out RUN ...`) in a
fresh process under `cProfile`, and splits its wall time into stages by the
cumulative time of the functions that do them:

- start-up: `import transfer_tf` and TensorFlow, to the first line of `main`;
- scan and split: `read_folder` (listing, checking and splitting the files);
- model: `ImageClassifier.from_backbone`;
- feature cache: the one pass of the frozen base (`feature_cache.start`),
  split into decoding the images (`images_for`) and the forward pass;
- training: both phases' `fit` (`phases._fit`);
- validation outputs from the cache: the top blocks and the head run once
  more on the cached validation activations as training ends
  (`FeatureCache.head_outputs`), so that the report need not run the model;
- save: the run folder (`ImageClassifier.save`);
- report: held-out evaluation, plots and `report.md` (`write_report`), split
  into the held-out predictions (`predict_dataset`: the test split, or the
  validation split when training left no outputs), the validation
  predictions from training's outputs (`predictions_from_outputs`: decoding
  the mistakes shown), the error analysis with Grad-CAM (`_interpretation`)
  and the rest (plots, pages);
- other: the rest (argument parsing, dataset set-up, ...).

Also times `python -c "import transfer_tf"` and `transfer-tf --help` (the
CLI's start-up target is under 5 s). `--env` runs every process under other
TensorFlow settings, e.g. `--env ONEDNN_MAX_CPU_ISA=AVX2` (AVX2 kernels on an
AVX-512 machine) or `--env TF_ENABLE_ONEDNN_OPTS=0`.

    python benchmarks/train_profile.py                       # ResNet50, 500 sign-language images, 64 px
    python benchmarks/train_profile.py --env ONEDNN_MAX_CPU_ISA=AVX2 --tag avx2
    python benchmarks/train_profile.py --job flowers --env ONEDNN_MAX_CPU_ISA=AVX2 --tag flowers_avx2
    python benchmarks/train_profile.py --job flowers --floors --tag flowers_avx2_cpu   # on an AVX2-only CPU

`--job flowers` is the flowers-sized job: EfficientNet-Lite0 with its
ImageNet weights at 224 px, every one of the 2,062 sign-language photos,
5 + 3 epochs, top block unfrozen.

Beside the run, `--floors` measures in a fresh process (same `--env`) the
floor of each stage that grows with the images: decoding every file with
Pillow, one by one, without resizing (the decoder's own speed); one forward pass of the frozen
base over as many images, from the batch time of a warmed-up `tf.function`
on random pixels; and each phase fitted as a bare Keras model (the head, then
the unfrozen blocks and the head) on random in-memory tensors of the cached
shapes, as many, batched alike, with the same validation (phase 2 as in
`cached_features.py`).

Data: `per_class` images per class of `../shared/data/sign-language-digits`,
5 + 5 epochs, top block unfrozen, `--weights none` (random weights: the
time is the same). Writes `benchmarks/results/train_profile[_TAG].json`
with the CPU's flags.
"""

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_results  # noqa: E402
from cached_features import DATA, floor, subset, unfrozen_blocks  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "train_profile.json"
STAGES = {  # stage: (file suffix, function name) whose cumulative time it is
    "scan and split": ("transfer_tf/cli/jobs/common.py", "read_folder"),
    "model": ("transfer_tf/model/classifier.py", "from_backbone"),
    "feature cache": ("transfer_tf/training/feature_cache.py", "start"),
    "training": ("transfer_tf/training/phases.py", "_fit"),
    "validation outputs from the cache": ("transfer_tf/training/feature_cache.py", "head_outputs"),
    "save": ("transfer_tf/model/classifier.py", "save"),
    "report": ("transfer_tf/evaluation/report.py", "write_report"),
}
PARTS = {  # a part of a stage: (the stage, file suffix, function name); the stage keeps the rest
    "feature cache: decoding": ("feature cache", "transfer_tf/data/pipeline.py", "images_for"),
    "report: held-out predictions": ("report", "transfer_tf/evaluation/predictions.py", "predict_dataset"),
    "report: validation from the cached outputs": ("report", "transfer_tf/evaluation/predictions.py",
                                                   "predictions_from_outputs"),
    "report: error analysis (Grad-CAM)": ("report", "transfer_tf/evaluation/report.py", "_interpretation"),
}
JOBS = {
    "small": {"backbone": "resnet50", "weights": "none", "per_class": 50, "image_size": 64, "epochs": (5, 5)},
    "flowers": {"backbone": "efficientnet_lite0", "weights": "imagenet", "per_class": None, "image_size": 224,
                "epochs": (5, 3)},
}
PROFILED = """
import cProfile, sys, time
start = time.perf_counter()
from transfer_tf import cli
import tensorflow
imported = time.perf_counter() - start
profile = cProfile.Profile()
code = profile.runcall(cli.main, sys.argv[2:])
profile.dump_stats(sys.argv[1])
print("IMPORT", imported)
sys.exit(code)
"""


def timed(command, env, repeats):
    """Median wall time of a command, in seconds."""
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def stages(profile_file, wall, imported):
    """Seconds per stage from the profile; `other` is what none of them covers."""
    stats = pstats.Stats(str(profile_file)).stats
    wanted = {**STAGES, **{part: where[1:] for part, where in PARTS.items()}}
    found = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
        for stage, (suffix, name) in wanted.items():
            if filename.endswith(suffix) and function == name:
                found[stage] = found.get(stage, 0.0) + cumulative
    seconds = {"start-up (imports)": imported}
    for stage in STAGES:
        parts = {part: found.get(part, 0.0) for part, where in PARTS.items() if where[0] == stage}
        seconds[stage if not parts else f"{stage}: the rest"] = found.get(stage, 0.0) - sum(parts.values())
        seconds.update(parts)
    seconds["other"] = max(wall - sum(seconds.values()), 0.0)
    return seconds


def floors_worker(job_name, data_dir):
    """Prints the floors of one job's stages as a JSON line (run in a fresh process)."""
    import transfer_tf as ttf  # first: its CPU settings apply before TensorFlow loads
    import keras
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from transfer_tf.data.images import is_image_file

    job = JOBS[job_name]
    files = sorted(path for path in Path(data_dir).rglob("*") if is_image_file(path))
    tick = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            image.convert("RGB")
    decoding = time.perf_counter() - tick
    splits = ttf.data.from_directory(data_dir, image_size=job["image_size"], validation_split=0.2, seed=0,
                                     batch_size=32, verbose=False)
    weights = None if job["weights"] == "none" else job["weights"]
    clf = ttf.ImageClassifier.from_backbone(job["backbone"], class_names=splits.class_names,
                                            image_size=job["image_size"], weights=weights)
    bottom, top = ttf.split_base(clf.base, clf.backbone_spec, unfrozen_blocks(clf, "1")[0])
    forward = tf.function(lambda x: top(bottom(clf.preprocessor(x), training=False), training=False))
    batch = np.random.default_rng(0).uniform(0, 255, (32, job["image_size"], job["image_size"], 3))
    batch = batch.astype("float32")
    for _ in range(2):
        forward(batch).numpy()
    batch_seconds = []
    for _ in range(5):
        tick = time.perf_counter()
        forward(batch).numpy()
        batch_seconds.append(time.perf_counter() - tick)
    images = sum(map(sum, splits.counts.values()))
    features = clf.base.output.shape[1:]
    rng = np.random.default_rng(0)
    arrays = {split: (rng.normal(size=(sum(splits.counts[split]), *features)).astype("float32"),
                      rng.integers(0, len(splits.class_names), sum(splits.counts[split])))
              for split in ("train", "validation")}
    inputs = keras.Input(features)
    head = keras.Model(inputs, clf.head(inputs))
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    tick = time.perf_counter()
    head.fit(*arrays["train"], validation_data=arrays["validation"], batch_size=32, epochs=job["epochs"][0],
             verbose=0)
    phase1 = time.perf_counter() - tick
    phase2 = floor(clf, splits, "1", *job["epochs"], seed=0)[1]
    print("FLOORS " + json.dumps({
        "files": len(files), "decoding": decoding,
        "forward pass of the frozen base": statistics.median(batch_seconds) * -(-images // 32),
        "phase 1": phase1, "phase 2": phase2}))


def measure_floors(job_name, data_dir, env):
    done = subprocess.run([sys.executable, __file__, "--floors-worker", job_name, str(data_dir)], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"The floors failed:\n{done.stderr[-3000:]}")
    return json.loads(next(line[len("FLOORS "):] for line in done.stdout.splitlines() if line.startswith("FLOORS")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", choices=tuple(JOBS), default="small",
                        help="small: ResNet50, 500 images at 64 px, 5 + 5 epochs, random weights; flowers: "
                             "ImageNet Lite0, all 2,062 images at 224 px, 5 + 3 epochs")
    parser.add_argument("--repeats", type=int, default=3, help="of the start-up timings")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", help="results go to train_profile_TAG.json")
    parser.add_argument("--floors", action="store_true", help="also measure the floor of each stage")
    parser.add_argument("--floors-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floors_worker:
        return floors_worker(*args.floors_worker)
    if not DATA.is_dir():
        sys.exit(f"The benchmark needs {DATA} (sign-language-digits).")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **dict(item.split("=", 1) for item in args.env)}
    results = RESULTS.with_name(f"train_profile_{args.tag}.json") if args.tag else RESULTS
    startup = {
        "python -c 'import transfer_tf'": timed([sys.executable, "-c", "import transfer_tf"], env, args.repeats),
        "transfer-tf --help": timed([sys.executable, "-m", "transfer_tf.cli", "--help"], env, args.repeats),
        "python -c 'import tensorflow'": timed([sys.executable, "-c", "import tensorflow"], env, args.repeats),
    }
    with tempfile.TemporaryDirectory() as tmp:
        job = JOBS[args.job]
        data_dir = subset(DATA, job["per_class"], Path(tmp) / "digits")
        profile_file = Path(tmp) / "train.prof"
        command = [sys.executable, "-c", PROFILED, str(profile_file), "train", str(data_dir),
                   "--out", str(Path(tmp) / "run"), "--backbone", job["backbone"], "--weights", job["weights"],
                   "--image-size", str(job["image_size"]), "--head-epochs", str(job["epochs"][0]),
                   "--fine-tune-epochs", str(job["epochs"][1]), "--unfreeze-blocks", "1", "--quiet"]
        tick = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - tick
        if done.returncode:
            sys.exit(f"transfer-tf train failed:\n{done.stderr[-3000:]}")
        imported = float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("IMPORT")))
        seconds = stages(profile_file, wall, imported)
        floors = measure_floors(args.job, data_dir, env) if args.floors else None
    record = {"settings": {**{k: v for k, v in vars(args).items() if k != "tag"}, **job},
              "startup_seconds": startup, "train_wall_seconds": wall, "stages_seconds": seconds,
              "floors_seconds": floors}
    write_results(results, "train_profile.py", argv, record)
    for name, value in startup.items():
        print(f"{name:<32} {value:6.2f} s")
    print(f"\ntransfer-tf train, {args.job} job ({job['backbone']} at {job['image_size']} px): "
          f"{wall:.1f} s\n\n| stage | seconds | share |\n|---|---|---|")
    for stage, value in seconds.items():
        print(f"| {stage} | {value:.1f} | {value / wall:.0%} |")
    if floors:
        print("\n| stage | measured | floor | measured / floor |\n|---|---|---|---|")
        measured = {"decoding": seconds["feature cache: decoding"],
                    "forward pass of the frozen base": seconds["feature cache: the rest"],
                    "both phases": seconds["training"]}
        floor_of = {"decoding": floors["decoding"],
                    "forward pass of the frozen base": floors["forward pass of the frozen base"],
                    "both phases": floors["phase 1"] + floors["phase 2"]}
        for stage, value in measured.items():
            print(f"| {stage} | {value:.1f} s | {floor_of[stage]:.1f} s | {value / floor_of[stage]:.2f}x |")


if __name__ == "__main__":
    main()
