"""Pretraining on unlabelled images of the task's own domain, against scratch and ImageNet: ELPV cells.

All 2,624 ELPV cells (labels ignored) are the unlabelled pool; per seed, 300
cells (drawn per class in proportion) are labelled for training and the
other 2,324 are the test set. EfficientNet-Lite0 at `--image-size`:

- `scratch`: random weights, every layer trained (`train_from_scratch`,
  BatchNorm momentum 0.9) for `head_epochs + fine_tune_epochs`;
- `autoencoder`, `masked`: random weights pretrained on the pool
  (`ttf.pretrain`), then fine-tuned;
- `imagenet`: the ImageNet weights, fine-tuned;
- `imagenet_masked`: the ImageNet weights, pretraining continued on the
  pool with the masked objective, then fine-tuned.

Every fine-tuning is `fine_tune` with the same settings (head, then the top
two blocks at 1e-4, classes weighted). Each base is pretrained once (seed 0)
and fine-tuned with every seed; pretraining time is reported apart.

    python benchmarks/unlabelled_pretraining.py
    python benchmarks/unlabelled_pretraining.py --seeds 0 --pretrain-epochs 2

Prints accuracy and balanced accuracy (mean and range over the seeds) and
writes `benchmarks/results/unlabelled_pretraining.json` with the CPU's flags.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import transfer_tf as ttf  # before keras: it turns oneDNN on where TensorFlow leaves it off

from _results import spread, write_results

RESULTS = Path(__file__).parent / "results" / "unlabelled_pretraining.json"
PRETRAINED = {"autoencoder": ("autoencoder", None), "masked": ("masked", None),
              "imagenet_masked": ("masked", "imagenet")}
VARIANTS = ("scratch", "autoencoder", "masked", "imagenet", "imagenet_masked")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--labelled", type=int, default=300)
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import keras

    cells = ttf.data.elpv_arrays(image_size=args.image_size)
    print(ttf.data.ELPV_LICENCE)
    folder = Path(tempfile.mkdtemp(prefix="pretrained_"))
    sources, pretrain_seconds = {}, {}
    for variant in args.variants:
        if variant in PRETRAINED:
            method, start = PRETRAINED[variant]
            began = time.perf_counter()
            result = ttf.pretrain("efficientnet_lite0", cells.images, method=method,
                                  epochs=args.pretrain_epochs, image_size=args.image_size, weights=start,
                                  seed=0, verbose=2)
            pretrain_seconds[variant] = time.perf_counter() - began
            result.save(folder / variant)
            sources[variant] = str(folder / variant)
            print(f"pretrained {variant}: {pretrain_seconds[variant]:.0f} s, final loss "
                  f"{result.record.history['loss'][-1]:.4f}", flush=True)
    rows = []
    for seed in args.seeds:
        labelled, rest = ttf.data.stratified_sample(cells.labels, args.labelled, seed=seed)
        train = (cells.images[labelled], cells.labels[labelled])
        test = ttf.data.from_arrays(cells.images[rest], cells.labels[rest], cells.class_names, batch_size=64).train
        for variant in args.variants:
            keras.utils.set_random_seed(seed)
            weights = {"scratch": None, "imagenet": "imagenet"}.get(variant, sources.get(variant))
            clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=cells.class_names,
                                                    image_size=args.image_size, weights=weights, seed=seed)
            began = time.perf_counter()
            if variant == "scratch":
                ttf.train_from_scratch(clf, train, epochs=args.head_epochs + args.fine_tune_epochs,
                                       class_weight="balanced", seed=seed, verbose=0)
            else:
                ttf.fine_tune(clf, train, head_epochs=args.head_epochs, fine_tune_epochs=args.fine_tune_epochs,
                              unfreeze_blocks=2, fine_tune_lr=1e-4, class_weight="balanced", seed=seed,
                              verbose=0)
            seconds = time.perf_counter() - began
            metrics = ttf.evaluate(clf, test)
            rows.append({"variant": variant, "seed": seed, "accuracy": metrics["accuracy"],
                         "balanced_accuracy": metrics["balanced_accuracy"], "seconds": seconds})
            print(f"seed {seed} {variant:<16} accuracy {metrics['accuracy']:.1%}  balanced "
                  f"{metrics['balanced_accuracy']:.1%}  {seconds:.0f} s", flush=True)

    lines = ["| start | accuracy (mean, min-max) | balanced accuracy | fine-tuning time | pretraining time |",
             "|---|---|---|---|---|"]
    for variant in args.variants:
        picked = [r for r in rows if r["variant"] == variant]
        pre = f"{pretrain_seconds[variant]:.0f} s" if variant in pretrain_seconds else "-"
        lines.append(f"| {variant} | {spread(r['accuracy'] for r in picked)} | "
                     f"{spread(r['balanced_accuracy'] for r in picked)} | "
                     f"{statistics.median(r['seconds'] for r in picked):.0f} s | {pre} |")
    table = "\n".join(lines)
    print("\n" + table)
    write_results(args.out, "unlabelled_pretraining.py", argv, {
        "settings": {k: v for k, v in vars(args).items() if k != "out"}, "pretrain_seconds": pretrain_seconds,
        "rows": rows, "table": table})


if __name__ == "__main__":
    main()
