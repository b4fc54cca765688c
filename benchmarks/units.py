"""Phase 2 on the last unit of the top block against the whole block: time and accuracy, real weights.

`transfer-tf train` from the shell, once per `--unfreeze-blocks` value and
seed, on the 2,062 sign-language photos with a 20 % test split:
EfficientNet-Lite0 with its ImageNet weights (offline) at 224 px, 5 + 3
epochs. `1` trains the whole top block (`block6_top`: MBConv units 6a-6d,
7a and the head convolution), `block7a` only its last unit.

    python benchmarks/units.py                          # 1 vs block7a, seeds 0 1 2
    python benchmarks/units.py --unfreeze 1 block6d block7a --seeds 0

Writes `benchmarks/results/units.json`.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import transfer_tf as ttf  # noqa: F401  (first: it sets TensorFlow's CPU options)

from _data import SIGN_DIGITS
from _results import spread, write_results

RESULTS = Path(__file__).parent / "results" / "units.json"


def run(unfreeze, seed, work):
    out = work / f"run-{unfreeze}-{seed}"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "transfer_tf.cli", "train", str(SIGN_DIGITS), "--out", str(out),
                           "--image-size", "224", "--head-epochs", "5", "--fine-tune-epochs", "3",
                           "--unfreeze-blocks", unfreeze, "--test-split", "0.2", "--seed", str(seed), "--quiet"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    history = json.loads((out / "history.json").read_text())
    phase2 = history["phases"][1]
    return {"unfreeze": unfreeze, "seed": seed, "wall_seconds": time.perf_counter() - started,
            "phase2_seconds": phase2["seconds"], "trainable_params": phase2["trainable_params"],
            "trained_blocks": phase2["trainable_blocks"],
            "test_accuracy": json.loads((out / "metrics.json").read_text())["accuracy"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unfreeze", nargs="+", default=["1", "block7a"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    if not SIGN_DIGITS.is_dir():
        raise SystemExit(f"Sign-language digits not found at {SIGN_DIGITS}.")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            for unfreeze in args.unfreeze:
                rows.append(run(unfreeze, seed, Path(work)))
                row = rows[-1]
                print(f"seed {seed}, --unfreeze-blocks {unfreeze}: phase 2 {row['phase2_seconds']:.1f} s "
                      f"({row['trainable_params']:,} weights), whole run {row['wall_seconds']:.0f} s, "
                      f"test {row['test_accuracy']:.1%}", flush=True)
    print("\n| --unfreeze-blocks | trains | phase 2 (median) | whole run (median) | test accuracy |\n|---|---|---|---|---|")
    for unfreeze in args.unfreeze:
        mine = [r for r in rows if r["unfreeze"] == unfreeze]
        print(f"| {unfreeze} | {', '.join(mine[0]['trained_blocks'])} ({mine[0]['trainable_params']:,} weights) | "
              f"{statistics.median(r['phase2_seconds'] for r in mine):.1f} s | "
              f"{statistics.median(r['wall_seconds'] for r in mine):.0f} s | "
              f"{spread(r['test_accuracy'] for r in mine)} |")
    write_results(RESULTS, "units.py", argv, {"rows": rows})


if __name__ == "__main__":
    main()
