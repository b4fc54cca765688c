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

`--job flowers` is the flowers-sized job: EfficientNet-Lite0 with its
ImageNet weights at 224 px, every one of the 2,062 sign-language photos,
5 + 3 epochs, top block unfrozen.

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
from cached_features import DATA, subset  # noqa: E402

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", choices=tuple(JOBS), default="small",
                        help="small: ResNet50, 500 images at 64 px, 5 + 5 epochs, random weights; flowers: "
                             "ImageNet Lite0, all 2,062 images at 224 px, 5 + 3 epochs")
    parser.add_argument("--repeats", type=int, default=3, help="of the start-up timings")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", help="results go to train_profile_TAG.json")
    args = parser.parse_args(argv)
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
    import transfer_tf as ttf

    record = {"command": "python benchmarks/train_profile.py " + " ".join(sys.argv[1:]),
              "settings": {**{k: v for k, v in vars(args).items() if k != "tag"}, **job},
              "startup_seconds": startup, "train_wall_seconds": wall, "stages_seconds": seconds,
              "machine": ttf.cpu_summary()}
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(record, indent=2) + "\n")
    for name, value in startup.items():
        print(f"{name:<32} {value:6.2f} s")
    print(f"\ntransfer-tf train, {args.job} job ({job['backbone']} at {job['image_size']} px): "
          f"{wall:.1f} s\n\n| stage | seconds | share |\n|---|---|---|")
    for stage, value in seconds.items():
        print(f"| {stage} | {value:.1f} | {value / wall:.0%} |")
    print(f"\nCPU: {record['machine']['cpu']}\nWrote {results}")


if __name__ == "__main__":
    main()
