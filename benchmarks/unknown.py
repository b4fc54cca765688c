"""The "unknown" answer on real data: how well each rejection score tells new classes from known ones.

Fine-tunes ImageNet EfficientNet-Lite0 (offline weights) on the sign-language
digits 0-4, calibrates it on their validation images (`transfer_tf.calibrate`:
temperature, then the threshold keeping 95 % of known validation images),
and scores three kinds of image it never trained on:

- known: the test images of digits 0-4;
- near unknowns: every image of digits 5-9 (the same hands, background and
  camera: the hard case);
- far unknowns: ELPV solar-cell images (another world).

Three rejection scores, each higher for "known":

- max probability: the highest calibrated class probability (what
  transfer_tf ships, since every exported file outputs it);
- energy: `T * logsumexp(logits / T)` (Liu et al., NeurIPS 2020);
- nearest neighbour: minus the cosine distance of the pooled feature to its
  k-th nearest training feature (Sun et al., ICML 2022; k = 10).

For each: AUROC against the near and the far unknowns, and at a threshold
kept 95 % of known validation images, the share of known test images kept
and of unknowns rejected. Over seeds.

    python benchmarks/unknown.py                    # 128 px, seeds 0-2
    python benchmarks/unknown.py --seeds 0 --elpv-images 200

Data: `../shared/data/sign-language-digits` and the `elpv-dataset` package.
Writes `benchmarks/results/unknown.json`.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import SIGN_DIGITS, linked_digits
from _results import write_results

import transfer_tf as ttf
from transfer_tf.evaluation.unknown import choose_unknown_threshold

RESULTS = Path(__file__).parent / "results"
KNOWN, NEW = [str(d) for d in range(5)], [str(d) for d in range(5, 10)]
NEIGHBOURS = 10
SCORES = ("max_probability", "energy", "nearest_neighbour")


def features_and_logits(clf, images):
    """Pooled features and the head's logits (before softmax and temperature), batch by batch."""
    pooled, logits = [], []
    dense = clf.head.get_layer("predictions")
    for start in range(0, len(images), 64):
        maps = clf.extract_features(images[start:start + 64])
        x = clf.head.layers[1](maps)  # the global pooling
        pooled.append(np.asarray(x))
        logits.append(np.asarray(x) @ dense.kernel.numpy() + dense.bias.numpy())
    return np.concatenate(pooled), np.concatenate(logits)


def images_of(dataset):
    return np.concatenate([np.asarray(x) for x, _ in dataset])


def scores_of(clf, images, train_features):
    pooled, logits = features_and_logits(clf, images)
    t = clf.temperature
    scaled = logits / t
    probabilities = np.exp(scaled - scaled.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    top = scaled.max(1, keepdims=True)
    energy = t * (top[:, 0] + np.log(np.exp(scaled - top).sum(1)))
    unit = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    distances = 1.0 - unit @ train_features.T
    kth = np.sort(distances, axis=1)[:, NEIGHBOURS - 1]
    return {"max_probability": probabilities.max(1), "energy": energy, "nearest_neighbour": -kth}


def auroc(known, unknown):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(known)), np.zeros(len(unknown))], np.r_[known, unknown]))


def measure(seed, args, elpv_images, work):
    started = time.perf_counter()
    known = ttf.data.from_directory(linked_digits(work / f"known_{seed}", KNOWN), image_size=args.image_size,
                                    validation_split=0.1, test_split=0.2, seed=seed, verbose=0)
    new = ttf.data.from_directory(linked_digits(work / f"new_{seed}", NEW), image_size=args.image_size,
                                  validation_split=0.0, seed=seed, verbose=0)
    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", class_names=known.class_names,
                                            image_size=args.image_size, weights="imagenet")
    ttf.fine_tune(clf, known.train, known.validation, head_epochs=args.head_epochs,
                  fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=1, seed=seed, verbose=0)
    calibration = ttf.calibrate(clf, known.validation, known_kept=args.known_kept)
    train_pooled, _ = features_and_logits(clf, images_of(known.train))
    train_unit = train_pooled / np.linalg.norm(train_pooled, axis=1, keepdims=True)
    sets = {"validation": images_of(known.validation), "known": images_of(known.test),
            "near": images_of(new.train), "far": elpv_images}
    scored = {name: scores_of(clf, images, train_unit) for name, images in sets.items()}
    test_labels = np.concatenate([np.asarray(y) for _, y in known.test]).reshape(-1)
    row = {"seed": seed, "temperature": calibration.temperature, "threshold": clf.unknown_threshold,
           "known_test_images": len(sets["known"]), "near_images": len(sets["near"]),
           "far_images": len(sets["far"]),
           "known_test_accuracy": float(np.mean(np.asarray(
               ttf.predict_labels(clf, sets["known"])) == np.asarray(known.class_names)[test_labels]))}
    for score in SCORES:
        cut = choose_unknown_threshold(np.c_[scored["validation"][score]], args.known_kept) \
            if score == "max_probability" else np.quantile(scored["validation"][score], 1 - args.known_kept)
        row[score] = {
            "auroc_near": auroc(scored["known"][score], scored["near"][score]),
            "auroc_far": auroc(scored["known"][score], scored["far"][score]),
            "known_kept": float(np.mean(scored["known"][score] >= cut)),
            "near_rejected": float(np.mean(scored["near"][score] < cut)),
            "far_rejected": float(np.mean(scored["far"][score] < cut)),
        }
    shipped = ttf.predict_labels(clf, sets["near"], reject=True)
    row["max_probability"]["near_rejected_by_predict_labels"] = shipped.count("unknown") / len(shipped)
    row["seconds"] = time.perf_counter() - started
    print(f"seed {seed}: T = {row['temperature']:.2f}, threshold {row['threshold']:.3f}, "
          f"known test accuracy {row['known_test_accuracy']:.1%}, {row['seconds']:.0f} s")
    for score in SCORES:
        r = row[score]
        print(f"  {score:<18} AUROC near {r['auroc_near']:.3f} far {r['auroc_far']:.3f}; kept {r['known_kept']:.1%} "
              f"known, rejected {r['near_rejected']:.1%} near and {r['far_rejected']:.1%} far")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--known-kept", type=float, default=0.95)
    parser.add_argument("--elpv-images", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    if not SIGN_DIGITS.is_dir():
        raise SystemExit(f"Sign-language digits not found at {SIGN_DIGITS}.")
    elpv = ttf.data.elpv_arrays(image_size=args.image_size).images
    elpv = elpv[np.random.default_rng(0).permutation(len(elpv))[:args.elpv_images]]
    with tempfile.TemporaryDirectory() as work:
        rows = [measure(seed, args, elpv, Path(work)) for seed in args.seeds]
    summary = {score: {key: statistics.mean(row[score][key] for row in rows) for key in rows[0][score]}
               for score in SCORES}
    summary["known_test_accuracy"] = statistics.mean(row["known_test_accuracy"] for row in rows)
    print("\nmean over seeds:")
    for score in SCORES:
        s = summary[score]
        print(f"  {score:<18} AUROC near {s['auroc_near']:.3f} far {s['auroc_far']:.3f}; kept {s['known_kept']:.1%} "
              f"known, rejected {s['near_rejected']:.1%} near and {s['far_rejected']:.1%} far")
    write_results(RESULTS / "unknown.json", "unknown.py", argv,
                  {"settings": vars(args), "rows": rows, "summary": summary})


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
