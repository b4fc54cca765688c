"""Where a whole `transfer-tf train` run spends its time: start-up, the folder scan, training, the report.

Runs the CLI as a user would (`transfer-tf train DATA --out RUN ...`) in a
fresh process under `cProfile`, and splits its wall time into stages by the
cumulative time of the functions that do them:

- start-up: `import transfer_tf` and TensorFlow, to the first line of `main`;
- scan and split: `read_folder` (listing, checking and splitting the files);
- model: `ImageClassifier.from_backbone`;
- feature cache: the one pass of the frozen base (`feature_cache.start`);
- training: both phases' `fit` (`phases._fit`);
- save: the run folder (`ImageClassifier.save`);
- report: held-out evaluation, plots and `report.md` (`write_report`);
- other: the rest (argument parsing, dataset set-up, ...).

Also times `python -c "import transfer_tf"` and `transfer-tf --help` (the
CLI's start-up target is under 5 s). `--env` runs every process under other
TensorFlow settings, e.g. `--env ONEDNN_MAX_CPU_ISA=AVX2` (AVX2 kernels on an
AVX-512 machine) or `--env TF_ENABLE_ONEDNN_OPTS=0`.

    python benchmarks/train_profile.py                       # ResNet50, 500 sign-language images, 64 px
    python benchmarks/train_profile.py --env ONEDNN_MAX_CPU_ISA=AVX2 --tag avx2

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
    "save": ("transfer_tf/model/classifier.py", "save"),
    "report": ("transfer_tf/evaluation/report.py", "write_report"),
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
    found = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
        for stage, (suffix, name) in STAGES.items():
            if filename.endswith(suffix) and function == name:
                found[stage] = found.get(stage, 0.0) + cumulative
    seconds = {"start-up (imports)": imported, **{stage: found.get(stage, 0.0) for stage in STAGES}}
    seconds["other"] = max(wall - sum(seconds.values()), 0.0)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=64)
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
        data_dir = subset(DATA, args.per_class, Path(tmp) / "digits")
        profile_file = Path(tmp) / "train.prof"
        command = [sys.executable, "-c", PROFILED, str(profile_file), "train", str(data_dir),
                   "--out", str(Path(tmp) / "run"), "--backbone", args.backbone, "--weights", "none",
                   "--image-size", str(args.image_size), "--head-epochs", "5", "--fine-tune-epochs", "5",
                   "--unfreeze-blocks", "1", "--quiet"]
        tick = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - tick
        if done.returncode:
            sys.exit(f"transfer-tf train failed:\n{done.stderr[-3000:]}")
        imported = float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("IMPORT")))
        seconds = stages(profile_file, wall, imported)
    import transfer_tf as ttf

    record = {"command": "python benchmarks/train_profile.py " + " ".join(sys.argv[1:]),
              "settings": {k: v for k, v in vars(args).items() if k != "tag"},
              "startup_seconds": startup, "train_wall_seconds": wall, "stages_seconds": seconds,
              "machine": ttf.cpu_summary()}
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(record, indent=2) + "\n")
    for name, value in startup.items():
        print(f"{name:<32} {value:6.2f} s")
    print(f"\ntransfer-tf train, {args.backbone}, {args.per_class * 10} images at {args.image_size} px: "
          f"{wall:.1f} s\n\n| stage | seconds | share |\n|---|---|---|")
    for stage, value in seconds.items():
        print(f"| {stage} | {value:.1f} | {value / wall:.0%} |")
    print(f"\nCPU: {record['machine']['cpu']}\nWrote {results}")


if __name__ == "__main__":
    main()
