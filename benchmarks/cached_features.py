"""Cached features against the plain Keras two-phase recipe: time, accuracy, memory.

The plain recipe is the Keras transfer-learning guide's: a frozen base called
in inference mode with a pooling-dropout-dense head, `fit`; then the top
block unfrozen (BatchNorm kept frozen), recompiled at a low learning rate,
`fit` again. Every image goes through the whole base every epoch.
transfer_tf's `fine_tune` runs the frozen base once (phase 1 on cached base
outputs, phase 2 on cached activations below the top block).

Both start from the same weights and read the same `tf.data` datasets (the
decoded images are cached in memory for both, so decoding is not timed).
Each run is its own process, so its peak memory (max RSS) is its own.

    python benchmarks/cached_features.py                     # VGG16 + ResNet50, 3 repeats
    python benchmarks/cached_features.py --backbones vgg16 --repeats 1
    python benchmarks/cached_features.py --variants transfer_tf_bf16   # + mixed bfloat16

Data: 100 images per class of `../shared/data/sign-language-digits` (1,000
images; 806 train, 194 validation by the stable split), 64 px, 5 + 5 epochs, `weights=None`
(random weights: fine for timing). Writes
`benchmarks/results/cached_features.json`.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sign-language-digits" / "images"
RESULTS = Path(__file__).parent / "results" / "cached_features.json"
TOP_BLOCK = {"vgg16": "block5", "resnet50": "conv5"}


def subset(source, per_class, folder):
    """A folder of links to the first `per_class` images of each class."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        target = folder / class_dir.name
        target.mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (target / image.name).symlink_to(image)
    return folder


def worker(backbone, method, data_dir, image_size, head_epochs, tune_epochs, seed):
    """One training run; prints a JSON line with its times, accuracy and peak memory."""
    import keras

    import transfer_tf as ttf
    from transfer_tf.backbones import block_layers
    from transfer_tf.freezing import all_layers, is_batchnorm

    splits = ttf.data.from_directory(data_dir, image_size=image_size, validation_split=0.2,
                                     seed=seed, batch_size=32, cache=True, verbose=False)
    keras.utils.set_random_seed(seed)
    clf = ttf.ImageClassifier.from_backbone(
        backbone, class_names=splits.class_names, image_size=image_size, weights=None,
        dtype="mixed_bfloat16" if method == "transfer_tf_bf16" else None)
    if method.startswith("transfer_tf"):
        result = ttf.fine_tune(clf, splits.train, splits.validation, head_epochs=head_epochs,
                               fine_tune_epochs=tune_epochs, unfreeze_blocks=1, seed=seed, verbose=0,
                               jit_compile=method == "transfer_tf_xla")
        cache_seconds = result.cache["seconds"]
        # The one pass of the base that fills the cache counts towards phase 1.
        phases = [cache_seconds + result.phases[0].seconds, result.phases[1].seconds]
        accuracy = result.history["val_accuracy"][-1]
        cache = result.cache
    else:
        # The Keras guide's recipe, on the same weights: a functional model over the base.
        base = clf.base
        inputs = keras.Input((image_size, image_size, 3))
        outputs = clf.head(base(clf.preprocessor(inputs), training=False))
        model = keras.Model(inputs, outputs)
        base.trainable = False
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        tick = time.perf_counter()
        model.fit(splits.train, validation_data=splits.validation, epochs=head_epochs, verbose=0)
        phases = [time.perf_counter() - tick]
        base.trainable = True
        for name, layers in block_layers(base, clf.backbone_spec).items():
            for layer in layers:
                layer.trainable = name == TOP_BLOCK[backbone]
        for layer in all_layers(base):
            if is_batchnorm(layer):
                layer.trainable = False
        model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        tick = time.perf_counter()
        history = model.fit(splits.train, validation_data=splits.validation,
                            epochs=head_epochs + tune_epochs, initial_epoch=head_epochs, verbose=0)
        phases.append(time.perf_counter() - tick)
        cache_seconds = 0.0
        accuracy = history.history["val_accuracy"][-1]
        cache = None
    print(json.dumps({
        "backbone": backbone, "method": method, "phase1_s": phases[0], "phase2_s": phases[1],
        "total_s": sum(phases), "cache_s": cache_seconds, "val_accuracy": accuracy,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cache": cache,
    }))


def cache_size_mb(backbone, count, image_size):
    """Size of the cached tensors (activations below the top block + base outputs)."""
    import numpy as np

    import transfer_tf as ttf
    from transfer_tf.backbones import split_base

    clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=image_size, weights=None)
    bottom, _ = split_base(clf.base, clf.backbone_spec, TOP_BLOCK[backbone])
    per_image = np.prod(bottom.output.shape[1:]) + np.prod(clf.base.output.shape[1:])
    return float(count * per_image * 4 / 2**20)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=[], choices=("transfer_tf_xla", "transfer_tf_bf16"),
                        help="also time transfer_tf with XLA, or with mixed bfloat16")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--worker", nargs=3, metavar=("BACKBONE", "METHOD", "DATA_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        backbone, method, data_dir = args.worker
        worker(backbone, method, data_dir, args.image_size, args.head_epochs,
               args.fine_tune_epochs, seed=0)
        return
    if not DATA.is_dir():
        sys.exit(f"The benchmark needs {DATA} (sign-language-digits).")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = subset(DATA, args.per_class, Path(tmp) / "digits")
        for repeat in range(args.repeats):
            for backbone in args.backbones:
                for method in ("plain_keras", "transfer_tf", *args.variants):
                    done = subprocess.run(
                        [sys.executable, __file__, "--worker", backbone, method, str(data_dir),
                         "--image-size", str(args.image_size), "--head-epochs", str(args.head_epochs),
                         "--fine-tune-epochs", str(args.fine_tune_epochs)],
                        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                    )
                    if done.returncode:
                        sys.exit(f"{backbone} {method} failed:\n{done.stderr[-3000:]}")
                    run = json.loads(done.stdout.strip().splitlines()[-1])
                    run["repeat"] = repeat
                    runs.append(run)
                    print(f"repeat {repeat + 1}: {backbone:<9} {method:<12} phase 1 {run['phase1_s']:6.1f} s"
                          f"  phase 2 {run['phase2_s']:6.1f} s  val acc {run['val_accuracy']:.3f}"
                          f"  peak {run['peak_rss_mb']:,.0f} MB", flush=True)
    summary = {}
    variants = {}
    for backbone in args.backbones:
        for variant in args.variants:
            rows = [r for r in runs if r["backbone"] == backbone and r["method"] == variant]
            variants.setdefault(backbone, {})[variant] = {
                k: statistics.median(r[k] for r in rows) for k in ("phase1_s", "phase2_s", "total_s", "val_accuracy")}
    for backbone in args.backbones:
        med = {m: {k: statistics.median(r[k] for r in runs if r["backbone"] == backbone and r["method"] == m)
                   for k in ("phase1_s", "phase2_s", "total_s", "val_accuracy", "peak_rss_mb")}
               for m in ("plain_keras", "transfer_tf")}
        plain, ours = med["plain_keras"], med["transfer_tf"]
        summary[backbone] = {
            "median": med,
            "speedup": {k: plain[k] / ours[k] for k in ("phase1_s", "phase2_s", "total_s")},
            "val_accuracy_difference": ours["val_accuracy"] - plain["val_accuracy"],
            "cache_mb_for_2000_images_at_224px": cache_size_mb(backbone, 2000, 224),
        }
    record = {
        "settings": {"images": args.per_class * 10, "image_size": args.image_size,
                     "head_epochs": args.head_epochs, "fine_tune_epochs": args.fine_tune_epochs,
                     "repeats": args.repeats, "weights": None, "cpu_count": os.cpu_count()},
        "summary": summary, "variants": variants, "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print()
    print("| backbone | phase 1 plain / ours | phase 2 plain / ours | total plain / ours | val acc plain / ours | peak memory plain / ours |")
    print("|---|---|---|---|---|---|")
    for backbone, s in summary.items():
        p, o, x = s["median"]["plain_keras"], s["median"]["transfer_tf"], s["speedup"]
        print(f"| {backbone} | {p['phase1_s']:.0f} s / {o['phase1_s']:.0f} s ({x['phase1_s']:.1f}x) "
              f"| {p['phase2_s']:.0f} s / {o['phase2_s']:.0f} s ({x['phase2_s']:.1f}x) "
              f"| {p['total_s']:.0f} s / {o['total_s']:.0f} s ({x['total_s']:.1f}x) "
              f"| {p['val_accuracy']:.1%} / {o['val_accuracy']:.1%} "
              f"| {p['peak_rss_mb']:,.0f} MB / {o['peak_rss_mb']:,.0f} MB |")
        print(f"  cache for 2,000 images at 224 px: {s['cache_mb_for_2000_images_at_224px']:,.0f} MB")
    for backbone, rows in variants.items():
        for variant, m in rows.items():
            print(f"  {backbone} {variant}: phase 1 {m['phase1_s']:.0f} s, phase 2 {m['phase2_s']:.0f} s, "
                  f"total {m['total_s']:.0f} s, val acc {m['val_accuracy']:.1%}")
    print(f"\nWrote {RESULTS}")


if __name__ == "__main__":
    main()
