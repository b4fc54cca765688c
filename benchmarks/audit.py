"""`transfer-tf audit` against known faults planted in real image sets.

Each data set is written to a fresh folder split into `train/` and
`validation/` (80/20 per class, seeded), then faults are planted:

- label: 5 % of the images moved to another class folder at random;
- duplicate + conflict: 2 % copied byte for byte into another class;
- leakage: 2 % of the training images copied into the validation split;
- near duplicate: 2 % re-encoded as JPEG (quality 70) at 90 % of their size,
  slightly brightened, into the same class and split.

The audit then runs as a user runs it (`ttf.audit`, EfficientNet-Lite0 with
its ImageNet weights, 128 px), and each finding is scored against what was
planted: precision and recall of the files it flags, and for label issues
also at k = the number planted (the top k of the ranking). The copies filed
under another class also carry a wrong label, so they count as planted label
issues. Real faults the data already had count against precision: the
figures are a floor.

    python benchmarks/audit.py                      # sign-language digits and ELPV, seeds 0-2
    python benchmarks/audit.py --data elpv --seeds 0

Writes `benchmarks/results/audit.json`.
"""

import argparse
import io
import shutil
import statistics
import time
from pathlib import Path

import transfer_tf as ttf  # first: sets TensorFlow's CPU options before it loads
import numpy as np
from PIL import Image

from _data import SIGN_DIGITS
from _results import write_results

RESULTS = Path(__file__).parent / "results" / "audit.json"
ISSUES = ("label", "duplicate", "conflict", "leakage", "near_duplicate")


def sign_digits():
    if not SIGN_DIGITS.is_dir():
        raise SystemExit(f"Sign-language digits not found at {SIGN_DIGITS}; use --data elpv.")
    return [(path, folder.name) for folder in sorted(SIGN_DIGITS.iterdir()) if folder.is_dir()
            for path in sorted(folder.iterdir()) if ttf.data.images.is_image_file(path)]


def elpv():
    from transfer_tf.data.solar_cells import ELPV_TASKS, _elpv_label, elpv_table

    names = list(ELPV_TASKS["defective"])
    return [(Path(path), names[_elpv_label(probability, "defective")]) for path, probability, _ in elpv_table()]


SOURCES = {"sign_digits": sign_digits, "elpv": elpv}


def plant(items, root, seed):
    """Writes the split folder with its faults; returns the planted paths per issue (relative to root)."""
    rng = np.random.default_rng(seed)
    classes = sorted({label for _, label in items})
    shutil.rmtree(root, ignore_errors=True)
    n = len(items)
    order = rng.permutation(n)
    flipped, crossed, leaked, near = (set(order[a:b]) for a, b in (
        (0, n // 20), (n // 20, n // 20 + n // 50), (n // 20 + n // 50, n // 20 + n // 25),
        (n // 20 + n // 25, n // 20 + 3 * n // 50)))
    validation = set(rng.choice(n, n // 5, replace=False)) - leaked  # leaked copies come from train
    truth = {issue: set() for issue in ISSUES}
    written = {}
    for i, (path, label) in enumerate(items):
        split = "validation" if i in validation else "train"
        if i in flipped:
            label = rng.choice([c for c in classes if c != label])
        relative = f"{split}/{label}/{i:05d}{path.suffix.lower()}"
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written[i] = (relative, split, label)
        if i in flipped:
            truth["label"].add(relative)
    for i in crossed:
        relative, split, label = written[i]
        other = rng.choice([c for c in classes if c != label])
        copy = f"{split}/{other}/copy_{i:05d}{Path(relative).suffix}"
        _copy(root, relative, copy)
        truth["duplicate"] |= {relative, copy}
        truth["conflict"] |= {relative, copy}
        truth["label"].add(copy)
    for i in leaked:
        relative, _, label = written[i]
        copy = f"validation/{label}/leak_{i:05d}{Path(relative).suffix}"
        _copy(root, relative, copy)
        truth["duplicate"] |= {relative, copy}
        truth["leakage"] |= {relative, copy}
    for i in near:
        relative, split, label = written[i]
        copy = f"{split}/{label}/near_{i:05d}.jpg"
        with Image.open(root / relative) as image:
            image = image.convert("RGB")
            smaller = image.resize((max(1, int(image.width * 0.9)), max(1, int(image.height * 0.9))))
            brighter = Image.eval(smaller, lambda v: min(255, int(v * 1.05) + 3))
            buffer = io.BytesIO()
            brighter.save(buffer, format="JPEG", quality=70)
        (root / copy).write_bytes(buffer.getvalue())
        truth["near_duplicate"] |= {relative, copy}
    return truth


def _copy(root, source, target):
    (root / target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / source, root / target)


def score(result, truth):
    """Precision and recall of each issue's flagged files; label issues also at k = planted."""
    scores = {}
    for issue in ISSUES:
        flagged = {f.path for f in result.findings if f.issue == issue}
        hits = len(flagged & truth[issue])
        scores[issue] = {"planted": len(truth[issue]), "flagged": len(flagged),
                         "precision": hits / max(len(flagged), 1), "recall": hits / max(len(truth[issue]), 1)}
    if result.label_scores is not None:
        k = len(truth["label"])
        ranked = [result.files[i].relative for i in np.argsort(-result.label_scores, kind="stable")[:k]]
        scores["label"]["precision_at_k"] = scores["label"]["recall_at_k"] = len(set(ranked) & truth["label"]) / k
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--work", default="/tmp/transfer_tf_audit_benchmark", help="where the planted copies go")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    runs = []
    for data in args.data:
        items = SOURCES[data]()
        for seed in args.seeds:
            root = Path(args.work) / f"{data}-{seed}"
            truth = plant(items, root, seed)
            tick = time.perf_counter()
            result = ttf.audit(root, image_size=args.image_size, seed=seed, verbose=False)
            seconds = time.perf_counter() - tick
            scores = score(result, truth)
            runs.append({"data": data, "seed": seed, "images": len(result.files), "seconds": seconds,
                         "scores": scores})
            print(f"{data} seed {seed}: {len(result.files)} images audited in {seconds:.0f} s; " + "; ".join(
                f"{issue} P {s['precision']:.2f} R {s['recall']:.2f}" for issue, s in scores.items()))
            shutil.rmtree(root, ignore_errors=True)
    table = _table(runs)
    print("\n" + table)
    write_results(Path(args.out), "audit.py", argv, {"runs": runs, "table": table})


def _table(runs):
    lines = ["| data | images | seconds | " + " | ".join(f"{i} P / R" for i in ISSUES) + " | label P@k |",
             "|---|---|---|" + "---|" * (len(ISSUES) + 1)]
    for data in dict.fromkeys(r["data"] for r in runs):
        chosen = [r for r in runs if r["data"] == data]

        def mean(issue, key):
            return statistics.mean(r["scores"][issue].get(key, float("nan")) for r in chosen)

        cells = [f"{mean(i, 'precision'):.2f} / {mean(i, 'recall'):.2f}" for i in ISSUES]
        lines.append(f"| {data} | {chosen[0]['images']} | {statistics.median(r['seconds'] for r in chosen):.0f} | "
                     + " | ".join(cells) + f" | {mean('label', 'precision_at_k'):.2f} |")
    return "\n".join(lines) + f"\n\nMeans over seeds {sorted({r['seed'] for r in runs})}; seconds: median."


if __name__ == "__main__":
    main()
