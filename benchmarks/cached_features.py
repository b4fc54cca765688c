"""Cached features against the plain Keras two-phase recipe: time, accuracy, memory, and the floor.

The plain recipe is the Keras transfer-learning guide's: a frozen base called
in inference mode with a pooling-dropout-dense head, `fit`; then the top
block unfrozen (BatchNorm kept frozen), recompiled at a low learning rate,
`fit` again. Every image goes through the whole base every epoch.
transfer_tf's `fine_tune` runs the frozen base once (phase 1 on cached base
outputs, phase 2 on cached activations below the top block).

The floor of phase 2 is what no caching can remove: a bare Keras model of
just the unfrozen block and the head, `fit` on random in-memory activations
of the cached shape, as many, batched alike, with the same validation.
Phase 2 is reported as a ratio to it.

Both methods start from the same weights and read the same `tf.data`
datasets (the decoded images are cached in memory for both, so decoding is
not timed), in the same order: `fine_tune` draws one shuffle order before
each phase (the one Keras's `fit` draws under a distribution strategy, so a
run sees the same batches with or without one), and the plain recipe draws
it too, untimed. Without that, the two see different batches from the
first step, and on these small sets the batch order alone moves the final
accuracy by several points. The plain recipe keeps the base in inference
mode as the guide means it: under Keras 3.15 a functional model's
`base(x, training=False)` still runs the base's Dropout layers in `fit`
(EfficientNet-Lite0 has 9), so the base is called through a layer that
always passes `training=False`. Each run is its own process, so its peak
memory (max RSS) is its own, and each imports transfer_tf first: the plain
recipe runs under the same TensorFlow CPU settings (`cpu_settings`), a fair
ratio. `--env` runs every process under other settings, e.g. `--env
TF_ENABLE_ONEDNN_OPTS=0` (TensorFlow's default on AVX2-only CPUs).

    python benchmarks/cached_features.py                     # VGG16 + ResNet50, 1,000 images, 3 repeats
    python benchmarks/cached_features.py --per-class 50      # 500 images
    python benchmarks/cached_features.py --env TF_ENABLE_ONEDNN_OPTS=0 --tag onednn_off
    python benchmarks/cached_features.py --variants transfer_tf_bf16   # + mixed bfloat16
    python benchmarks/cached_features.py --backbones resnet50 --unfreeze conv5_block3 --tag resnet50_unit

Data: `per_class` images per class of `../shared/data/sign-language-digits`
(100: 1,000 images; 806 train, 194 validation by the stable split), 64 px,
5 + 5 epochs, `weights=None` (random weights: fine for timing; `--weights
imagenet --backbones efficientnet_lite0` checks the accuracy from real
ImageNet weights, available offline for Lite0). Repeat `r`
runs all three methods with seed `r`, one after the other; every ratio is
taken within a repeat (plain over transfer_tf, phase 2 over the floor,
accuracy difference) and summarised as the median over repeats, so a slow
spell of the machine hits both sides of a ratio. The `ceiling` is the
speed-up no cache can beat: the plain recipe's whole run over transfer_tf's
phase 1 (the caching pass and the head) plus phase 2 at its floor (or at
transfer_tf's own time, where that was lower: the floor is no strict bound).
`--unfreeze conv5_block3` trains only ResNet50's last residual unit in phase
2 (3 of conv5's 9 convolutions; `fine_tune(unfreeze_blocks="conv5_block3")`),
the plain recipe the same layers. Writes
`benchmarks/results/cached_features[_TAG].json` with the CPU's flags and
the TensorFlow settings of the runs; `--summarise FILE` prints and rewrites
the summary of a results file's runs without training.
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

import transfer_tf as ttf  # first: its CPU settings apply before TensorFlow loads

from _results import write_results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sign-language-digits" / "images"
RESULTS = Path(__file__).parent / "results" / "cached_features.json"


def unfrozen_blocks(clf, unfreeze):
    """The names phase 2 trains: `fine_tune`'s own reading of `--unfreeze`."""
    from transfer_tf.model.freezing import blocks_to_unfreeze
    from transfer_tf.training.settings import parse_blocks

    return blocks_to_unfreeze(clf, parse_blocks(unfreeze))


def in_inference_mode(base):
    """`base` inside a layer that calls it with `training=False`, whatever `fit` passes."""
    import keras

    class InferenceOnly(keras.layers.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, inputs):
            return self.inner(inputs, training=False)

    return InferenceOnly(base)


def subset(source, per_class, folder):
    """A folder of links to the first `per_class` images of each class."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        target = folder / class_dir.name
        target.mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (target / image.name).symlink_to(image)
    return folder


def worker(backbone, method, data_dir, image_size, head_epochs, tune_epochs, seed, weights=None, unfreeze="1"):
    """One training run; prints a JSON line with its times, accuracy and peak memory."""
    import keras

    from transfer_tf.backbones.blocks import block_map
    from transfer_tf.data.pipeline import advance_shuffle
    from transfer_tf.training.settings import parse_blocks

    splits = ttf.data.from_directory(data_dir, image_size=image_size, validation_split=0.2,
                                     seed=seed, batch_size=32, cache=True, verbose=False)
    keras.utils.set_random_seed(seed)
    clf = ttf.ImageClassifier.from_backbone(
        backbone, class_names=splits.class_names, image_size=image_size, weights=weights,
        dtype="mixed_bfloat16" if method == "transfer_tf_bf16" else None)
    names = unfrozen_blocks(clf, unfreeze)
    if method == "floor":
        phases = floor(clf, splits, unfreeze, head_epochs, tune_epochs, seed)
        accuracy, cache, cache_seconds = None, None, 0.0
        by_epoch = None
    elif method.startswith("transfer_tf"):
        result = ttf.fine_tune(clf, splits.train, splits.validation, head_epochs=head_epochs,
                               fine_tune_epochs=tune_epochs, unfreeze_blocks=parse_blocks(unfreeze), seed=seed,
                               verbose=0,
                               jit_compile=method == "transfer_tf_xla")
        cache_seconds = result.cache["seconds"]
        # The one pass of the base that fills the cache counts towards phase 1.
        phases = [cache_seconds + result.phases[0].seconds, result.phases[1].seconds]
        accuracy = result.history["val_accuracy"][-1]
        by_epoch = {k: result.history[k] for k in ("loss", "val_loss", "val_accuracy")}
        cache = result.cache
    else:
        # The Keras guide's recipe, on the same weights: a functional model over the base.
        base = clf.base
        inputs = keras.Input((image_size, image_size, 3))
        outputs = clf.head(in_inference_mode(base)(clf.preprocessor(inputs)))
        model = keras.Model(inputs, outputs)
        base.trainable = False
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        advance_shuffle(splits.train, 1)  # the order fine_tune draws before each phase
        tick = time.perf_counter()
        first = model.fit(splits.train, validation_data=splits.validation, epochs=head_epochs, verbose=0)
        phases = [time.perf_counter() - tick]
        base.trainable = True
        blocks = block_map(base, clf.backbone_spec, names[0])
        for name, layers in ttf.block_layers(base, clf.backbone_spec, blocks).items():
            for layer in layers:
                layer.trainable = name in names
        for layer in ttf.all_layers(base):
            if ttf.is_batchnorm(layer):
                layer.trainable = False
        model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        advance_shuffle(splits.train, 1)
        tick = time.perf_counter()
        history = model.fit(splits.train, validation_data=splits.validation,
                            epochs=head_epochs + tune_epochs, initial_epoch=head_epochs, verbose=0)
        phases.append(time.perf_counter() - tick)
        cache_seconds = 0.0
        accuracy = history.history["val_accuracy"][-1]
        by_epoch = {k: first.history[k] + history.history[k] for k in ("loss", "val_loss", "val_accuracy")}
        cache = None
    print(json.dumps({
        "backbone": backbone, "method": method, "phase1_s": phases[0], "phase2_s": phases[1],
        "total_s": sum(phases), "cache_s": cache_seconds, "val_accuracy": accuracy, "by_epoch": by_epoch,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cache": cache,
        "machine": ttf.cpu_summary(),
    }))


def floor(clf, splits, unfreeze, head_epochs, tune_epochs, seed):
    """Phase 2's floor: the unfrozen blocks + head fitted on random in-memory activations."""
    import keras
    import numpy as np

    from transfer_tf.model.freezing import unfreeze_top_blocks
    from transfer_tf.training.settings import parse_blocks

    _, top = ttf.split_base(clf.base, clf.backbone_spec, unfrozen_blocks(clf, unfreeze)[0])
    unfreeze_top_blocks(clf, parse_blocks(unfreeze))  # BatchNorm frozen, as phase 2 has it
    inputs = keras.Input(top.input.shape[1:])
    model = keras.Model(inputs, clf.head(top(inputs, training=False)))
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(seed)

    def arrays(split):
        count = sum(splits.counts[split])
        return (rng.normal(size=(count, *top.input.shape[1:])).astype("float32"),
                rng.integers(0, len(splits.class_names), count))

    train, validation = arrays("train"), arrays("validation")
    tick = time.perf_counter()
    model.fit(*train, validation_data=validation, batch_size=32, epochs=head_epochs + tune_epochs,
              initial_epoch=head_epochs, verbose=0)
    return [0.0, time.perf_counter() - tick]


def cache_size_mb(backbone, count, image_size, unfreeze="1"):
    """Size of the cached tensors (activations below the unfrozen blocks + base outputs)."""
    import numpy as np

    clf = ttf.ImageClassifier.from_backbone(backbone, num_classes=2, image_size=image_size, weights=None)
    bottom, _ = ttf.split_base(clf.base, clf.backbone_spec, unfrozen_blocks(clf, unfreeze)[0])
    per_image = np.prod(bottom.output.shape[1:]) + np.prod(clf.base.output.shape[1:])
    return float(count * per_image * 4 / 2**20)


def medians(runs, backbone, method):
    rows = [r for r in runs if r["backbone"] == backbone and r["method"] == method]
    return {k: statistics.median(r[k] for r in rows)
            for k in ("phase1_s", "phase2_s", "total_s", "val_accuracy", "peak_rss_mb") if rows[0][k] is not None}


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
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="environment of every run (e.g. TF_ENABLE_ONEDNN_OPTS=0)")
    parser.add_argument("--tag", help="results go to cached_features_TAG.json")
    parser.add_argument("--weights", choices=("none", "imagenet"), default="none",
                        help="starting weights (imagenet is offline only for efficientnet_lite0)")
    parser.add_argument("--unfreeze", default="1",
                        help="what phase 2 trains, as fine_tune's unfreeze_blocks: a number of blocks, or the "
                             "block or unit to start from, e.g. conv5_block3 (default: 1)")
    parser.add_argument("--summarise", type=Path, metavar="FILE",
                        help="summarise the runs of a results file again (no training)")
    parser.add_argument("--worker", nargs=4, metavar=("BACKBONE", "METHOD", "DATA_DIR", "SEED"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        backbone, method, data_dir, seed = args.worker
        worker(backbone, method, data_dir, args.image_size, args.head_epochs,
               args.fine_tune_epochs, seed=int(seed), weights=None if args.weights == "none" else args.weights,
               unfreeze=args.unfreeze)
        return
    if args.summarise:
        record = json.loads(args.summarise.read_text())
        record["summary"], record["variants"] = summarise(
            record["runs"], _unfreeze_of(record["settings"]))
        args.summarise.write_text(json.dumps(record, indent=2) + "\n")
        print_summary(record)
        print(f"Wrote {args.summarise}")
        return
    if not DATA.is_dir():
        sys.exit(f"The benchmark needs {DATA} (sign-language-digits).")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **dict(item.split("=", 1) for item in args.env)}
    results = RESULTS.with_name(f"cached_features_{args.tag}.json") if args.tag else RESULTS
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = subset(DATA, args.per_class, Path(tmp) / "digits")
        for repeat in range(args.repeats):
            for backbone in args.backbones:
                for method in ("plain_keras", "transfer_tf", "floor", *args.variants):
                    done = subprocess.run(
                        [sys.executable, __file__, "--worker", backbone, method, str(data_dir), str(repeat),
                         "--image-size", str(args.image_size), "--head-epochs", str(args.head_epochs),
                         "--fine-tune-epochs", str(args.fine_tune_epochs), "--weights", args.weights,
                         "--unfreeze", args.unfreeze],
                        capture_output=True, text=True, env=env,
                    )
                    if done.returncode:
                        sys.exit(f"{backbone} {method} failed:\n{done.stderr[-3000:]}")
                    run = json.loads(done.stdout.strip().splitlines()[-1])
                    run["repeat"] = repeat
                    runs.append(run)
                    accuracy = "" if run["val_accuracy"] is None else f"  val acc {run['val_accuracy']:.3f}"
                    print(f"repeat {repeat + 1}: {backbone:<9} {method:<12} phase 1 {run['phase1_s']:6.1f} s"
                          f"  phase 2 {run['phase2_s']:6.1f} s{accuracy}  peak {run['peak_rss_mb']:,.0f} MB",
                          flush=True)
    summary, variants = summarise(runs, args.unfreeze)
    record = {
        "settings": {"images": args.per_class * 10, "image_size": args.image_size,
                     "head_epochs": args.head_epochs, "fine_tune_epochs": args.fine_tune_epochs,
                     "repeats": args.repeats, "seeds": "repeat r: seed r", "weights": args.weights,
                     "unfreeze": args.unfreeze, "same_batch_order": True, "base_in_inference_mode": True,
                     "env": dict(item.split("=", 1) for item in args.env)},
        "summary": summary, "variants": variants, "runs": runs,
    }
    write_results(results, "cached_features.py", argv, record, machine=runs[0]["machine"])
    print_summary(record)


def _unfreeze_of(settings):
    """`--unfreeze` of a results file; older files recorded `resnet50_top` (conv5 meant one block)."""
    if "unfreeze" in settings:
        return settings["unfreeze"]
    return "1" if settings.get("resnet50_top", "conv5") == "conv5" else settings["resnet50_top"]


def summarise(runs, unfreeze="1"):
    """Per backbone: medians of each method, and the medians (and ranges) of the per-repeat ratios."""
    summary, variants = {}, {}
    for backbone in dict.fromkeys(r["backbone"] for r in runs):
        med = {m: medians(runs, backbone, m) for m in ("plain_keras", "transfer_tf", "floor")}
        by_repeat = {}
        for r in runs:
            if r["backbone"] == backbone:
                by_repeat.setdefault(r.get("repeat", 0), {})[r["method"]] = r
        paired = [rows for rows in by_repeat.values() if {"plain_keras", "transfer_tf", "floor"} <= set(rows)]

        def spread(values):
            return {"median": statistics.median(values), "min": min(values), "max": max(values)}

        summary[backbone] = {
            "median": med,
            "speedup": {k: spread([p["plain_keras"][k] / p["transfer_tf"][k] for p in paired])
                        for k in ("phase1_s", "phase2_s", "total_s")},
            "phase2_over_floor": spread([p["transfer_tf"]["phase2_s"] / p["floor"]["phase2_s"] for p in paired]),
            "ceiling": spread([p["plain_keras"]["total_s"] / (p["transfer_tf"]["phase1_s"] + min(
                p["floor"]["phase2_s"], p["transfer_tf"]["phase2_s"])) for p in paired]),
            "val_accuracy_difference": spread([p["transfer_tf"]["val_accuracy"] - p["plain_keras"]["val_accuracy"]
                                               for p in paired]),
            "repeats": len(paired),
            "cache_mb_for_2000_images_at_224px": cache_size_mb(backbone, 2000, 224, unfreeze),
        }
        variants[backbone] = {v: medians(runs, backbone, v) for v in
                              dict.fromkeys(r["method"] for r in runs if r["backbone"] == backbone)
                              if v not in med}
    return summary, variants


def print_summary(record):
    print()
    print("| backbone | phase 1 plain / ours | phase 2 plain / ours / floor | total plain / ours | "
          "val acc plain / ours | peak memory plain / ours |")
    print("|---|---|---|---|---|---|")
    for backbone, s in record["summary"].items():
        p, o, f, x = (s["median"]["plain_keras"], s["median"]["transfer_tf"], s["median"]["floor"],
                      s["speedup"])
        floor, accuracy = s["phase2_over_floor"], s["val_accuracy_difference"]
        print(f"| {backbone} | {p['phase1_s']:.0f} s / {o['phase1_s']:.0f} s ({x['phase1_s']['median']:.1f}x) "
              f"| {p['phase2_s']:.0f} s / {o['phase2_s']:.0f} s / {f['phase2_s']:.0f} s "
              f"({x['phase2_s']['median']:.1f}x; {floor['median']:.2f}x the floor, "
              f"{floor['min']:.2f}-{floor['max']:.2f}) "
              f"| {p['total_s']:.0f} s / {o['total_s']:.0f} s ({x['total_s']['median']:.1f}x, "
              f"{x['total_s']['min']:.1f}-{x['total_s']['max']:.1f}; ceiling {s['ceiling']['median']:.1f}x) "
              f"| {p['val_accuracy']:.1%} / {o['val_accuracy']:.1%} (difference {accuracy['median']:+.1%}, "
              f"{accuracy['min']:+.1%} to {accuracy['max']:+.1%}) "
              f"| {p['peak_rss_mb']:,.0f} MB / {o['peak_rss_mb']:,.0f} MB |")
        print(f"  cache for 2,000 images at 224 px: {s['cache_mb_for_2000_images_at_224px']:,.0f} MB")
    for backbone, rows in record["variants"].items():
        for variant, m in rows.items():
            print(f"  {backbone} {variant}: phase 1 {m['phase1_s']:.0f} s, phase 2 {m['phase2_s']:.0f} s, "
                  f"total {m['total_s']:.0f} s, val acc {m['val_accuracy']:.1%}")

if __name__ == "__main__":
    main()
