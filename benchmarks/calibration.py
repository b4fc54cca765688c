"""Temperature scaling on real data: expected calibration error before and after, on unseen test images.

Fine-tunes ImageNet EfficientNet-Lite0 (offline weights) on a real data set,
fits the temperature on the validation split with `transfer_tf.calibrate`,
and measures ECE (15 bins) and negative log-likelihood on the test split,
which neither training nor calibration saw, before and after; top-1
predictions must not change. Over seeds.

    python benchmarks/calibration.py                   # sign-language digits and ELPV, 128 px, seeds 0-2
    python benchmarks/calibration.py --data elpv --seeds 0

Data: `../shared/data/sign-language-digits` and the `elpv-dataset`
package. Writes `benchmarks/results/calibration.json`.
"""

import argparse
import statistics
from pathlib import Path

import numpy as np

import transfer_tf as ttf
from transfer_tf.evaluation.calibration import expected_calibration_error

from _results import write_results
from export_formats import load

RESULTS = Path(__file__).parent / "results"


def measure(name, seed, args):
    splits = load(name, args.image_size, seed)
    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=splits.class_names,
                                            image_size=args.image_size, weights="imagenet")
    ttf.fine_tune(clf, splits.train, splits.validation, head_epochs=args.head_epochs,
                  fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=1, class_weight="balanced",
                  seed=seed, verbose=0)
    test_before = ttf.predict_dataset(clf, splits.test)
    result = ttf.calibrate(clf, splits.validation)
    test_after = ttf.predict_dataset(clf, splits.test)
    labels = np.asarray(test_before.labels).reshape(-1)
    ece = expected_calibration_error
    row = {
        "seed": seed, "temperature": result.temperature,
        "validation_ece_before": result.ece_before, "validation_ece_after": result.ece_after,
        "test_ece_before": ece(test_before.scores, labels), "test_ece_after": ece(test_after.scores, labels),
        "test_accuracy": float(np.mean(test_before.scores.argmax(1) == labels)),
        "top1_unchanged": bool(np.array_equal(test_before.scores.argmax(1), test_after.scores.argmax(1))),
    }
    print(f"{name} seed {seed}: T = {row['temperature']:.2f}, test ECE {row['test_ece_before']:.4f} -> "
          f"{row['test_ece_after']:.4f}, accuracy {row['test_accuracy']:.1%}, top-1 unchanged: {row['top1_unchanged']}")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("digits", "elpv", "both"), default="both")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    names = ["digits", "elpv"] if args.data == "both" else [args.data]
    sets = {}
    for name in names:
        rows = [measure(name, seed, args) for seed in args.seeds]
        sets[name] = {"rows": rows, "summary": {
            key: statistics.mean(row[key] for row in rows)
            for key in ("temperature", "test_ece_before", "test_ece_after", "test_accuracy")}}
        sets[name]["summary"]["ece_lower_every_seed"] = all(r["test_ece_after"] < r["test_ece_before"] for r in rows)
        sets[name]["summary"]["top1_unchanged_every_seed"] = all(r["top1_unchanged"] for r in rows)
    write_results(RESULTS / "calibration.json", "calibration.py", argv, {"settings": vars(args), "sets": sets})


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
