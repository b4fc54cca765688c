"""`transfer-tf auto` and `ttf.auto`: the best model a folder gives in a stated time, with the choice explained.

Three stages share one `Budget`:
1. rank the candidate bases by LogME on their frozen features
   (`base_ranking`), at most `RANKING_SHARE` of the budget;
2. try the recipes of `recipe_search.RECIPES` on the best base, cheapest
   first, then the best recipe on the second base, each only if its
   estimated cost fits what is left;
3. save the best trial's classifier as an ordinary run folder, with
   `auto.json` and its section of the report.

Selection sees the training and validation images only. The test split, if
any, is read once, by the report, after the choice.
"""

import dataclasses
import tempfile
from pathlib import Path

from transfer_tf.core.budget import Budget, format_seconds, parse_budget
from transfer_tf.core.errors import WeightsNotAvailableError
from transfer_tf.core.integrity import write_json_atomically
from transfer_tf.core.seeding import seed_job
from transfer_tf.data.directory import from_directory
from transfer_tf.evaluation import recipe_search
from transfer_tf.evaluation.auto_tables import auto_tables, format_tables
from transfer_tf.evaluation.recipe_search import RECIPES, BaseCosts, Trial
from transfer_tf.evaluation.report import write_report
from transfer_tf.methods.base_ranking import check_candidates, describe, linear_probe_fits, score_base
from transfer_tf.model.run_data import run_metrics
from transfer_tf.model.saving import AUTO_FILE, MODEL_FILE

RANKING_SHARE = 0.4  # of the budget, for ranking the bases (the first one always runs if it fits the budget)
REPORT_SECONDS = 8.0  # kept back for saving, plots and the report page, besides its held-out predictions (5.5 s measured)
DECODE_ALLOWANCE = 1.5  # a base's pass with decoding over its forward pass alone, until one is measured


@dataclasses.dataclass
class AutoResult:
    """What `auto` did.

    Attributes:
        classifier: the chosen, trained `ImageClassifier`.
        splits: `ImageSplits` it was trained on.
        bases: list of dict. Every candidate base: its scores and seconds,
            or why it was not scored.
        trials: list of `Trial`. Every recipe tried, or why not.
        chosen: `Trial`. The one saved.
        budget_seconds: float.
        seconds: float. The whole run, report included.
        test_accuracy: float or `None`. On the test split, read after the choice.
        finished: bool. Whether `seconds` includes saving and the report.
    """

    classifier: object
    splits: object
    bases: list
    trials: list
    chosen: object
    budget_seconds: float
    seconds: float
    test_accuracy: object = None
    finished: bool = False

    def to_dict(self):
        return {"budget_seconds": self.budget_seconds, "seconds": self.seconds, "finished": self.finished,
                "ranked_by": "logme",
                "bases": self.bases, "trials": [trial.to_dict() for trial in self.trials],
                "chosen": self.chosen.to_dict(), "test_accuracy": self.test_accuracy,
                "selection": "training and validation images only; the test split is read after the choice"}


@dataclasses.dataclass
class _Candidate:
    row: object  # RankedBase
    splits: object
    costs: BaseCosts
    classifier: object  # the ranking's, kept to time its blocks


def auto(data_dir, out, *, budget="10m", candidates=None, weights="imagenet", validation_split=0.2,
         test_split=0.0, seed=0, overwrite=False, started=None, verbose=True):
    """Chooses a base and a recipe for a folder within a time budget, trains it and writes its run folder.

    It takes a folder, not `ImageSplits`: each candidate reads the images at
    its own size.

    Args:
        data_dir: str or path. One sub-folder of images per class (or
            `train/`, `validation/`, `test/`).
        out: str or path. The run folder to write.
        budget: float (seconds) or str such as `"90s"`, `"5m"`, `"1h"`. The
            whole run's time, the report included. A step whose measured
            cost estimate does not fit what is left does not start.
            Defaults to `"10m"`.
        candidates: list of `(backbone, image_size)` or `None`: every
            backbone with ImageNet weights here, at its size and about 4/7
            of it (`rank_bases`). Defaults to `None`.
        weights: the bases' weights, as `from_backbone` takes them.
            Defaults to `"imagenet"`.
        validation_split: float. Share of each class the choice is made on.
            Defaults to `0.2`.
        test_split: float. Share held out and read only after the choice,
            by the report. Defaults to `0.0`.
        seed: int. Seeds the split and every trial. Defaults to `0`.
        overwrite: bool. Replace a run at `out`. Defaults to `False`.
        started: float or `None`. The `time.monotonic()` the budget counts
            from; `transfer-tf auto` passes its own start, so that loading
            TensorFlow counts too. Defaults to `None`: the call.
        verbose: bool. Print each step. Defaults to `True`.

    Returns:
        `AutoResult`. `out` holds an ordinary run folder (it loads, evaluates,
        exports) plus `auto.json`.

    Raises:
        ValueError: for a bad budget, an unknown backbone or size, a folder
            giving no validation images, or a budget too small for one base.
        FileExistsError: if `out` holds a run and `overwrite` is False.

    Example:

        >>> result = ttf.auto("photos/", "runs/auto", budget="5m")  # doctest: +SKIP
        >>> result.chosen.recipe, result.chosen.validation_accuracy  # doctest: +SKIP
    """
    seconds = parse_budget(budget)
    candidates = check_candidates(candidates)
    out = Path(out)
    if (out / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a trained run. Choose another output folder or allow "
                              "replacing it (--overwrite / overwrite=True).")
    clock = Budget(seconds, reserve=REPORT_SECONDS, started=started)
    seed_job(seed)
    split = {"validation_split": validation_split, "test_split": test_split, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="transfer_tf-auto-") as cache:
        ranked, bases = _rank(data_dir, candidates, clock, weights, split, Path(cache), verbose)
        clock.reserve = REPORT_SECONDS + max(_report_seconds(c) for c in ranked[:2])
        trials, best, classifier = _search(ranked, clock, weights, seed, Path(cache), verbose)
    splits = next(c.splits for c in ranked if (c.row.backbone, c.row.image_size) == (best.backbone, best.image_size))
    result = AutoResult(classifier, splits, bases, trials, best, seconds, clock.elapsed())
    _write_run(out, result, clock, verbose)
    return result


def _rank(data_dir, candidates, clock, weights, split, cache, verbose):
    """The candidates scored within the ranking's share, best LogME first, and a record of each."""
    ranked, bases, per_pass, scoring, missing = [], [], DECODE_ALLOWANCE, 0.0, []
    for number, (backbone, size) in enumerate(candidates, 1):
        splits = from_directory(data_dir, image_size=size, verbose=False, **split)
        if number == 1:
            _check_splits(data_dir, splits, split)
            linear_probe = linear_probe_fits(splits, True, "logme", verbose)
        try:
            classifier, built = recipe_search.build(backbone, size, splits, weights)
        except WeightsNotAvailableError as error:
            missing.append(str(error))
            bases.append({"backbone": backbone, "image_size": size, "note": "not scored: weights not available"})
            if verbose:
                print(f"[{number}/{len(candidates)}] {backbone} at {size} px: not scored, its weights are not "
                      "available here (they download once with internet)")
            continue
        train_images = sum(splits.counts["train"])
        forward = recipe_search.forward_seconds_per_image(classifier)
        estimated = train_images * forward * per_pass + scoring
        within = None if not ranked else clock.seconds * RANKING_SHARE - clock.elapsed()
        if clock.plan(f"{backbone} at {size} px", estimated, within=within) is None:
            bases.append({"backbone": backbone, "image_size": size, "note": step_note(clock)})
            if verbose:
                print(f"[{number}/{len(candidates)}] {backbone} at {size} px: {step_note(clock)}")
            continue
        row = score_base(classifier, splits, linear_probe=linear_probe, seed=split["seed"], feature_cache_mode=cache)
        per_image = (row.seconds - row.scoring_seconds) / train_images
        per_pass, scoring = per_image / forward, row.scoring_seconds
        ranked.append(_Candidate(row, splits, BaseCosts(per_image, built, row.scoring_seconds), classifier))
        bases.append({**row.to_dict(), "estimated_seconds": estimated, "note": ""})
        if verbose:
            print(f"[{number}/{len(candidates)}] {describe(row)}")
    if not ranked and missing:
        raise WeightsNotAvailableError(missing[0])
    if not ranked:
        raise ValueError(f"The budget is too small to score even one base: {step_note(clock)}. "
                         f"Received: budget={clock.seconds:g} s")
    ranked.sort(key=lambda c: -c.row.logme)
    for candidate in ranked[2:]:  # no recipe is tried on them
        candidate.classifier = None
    return ranked, bases


def _search(ranked, clock, weights, seed, cache, verbose):
    """Every recipe on the best base, cheapest first, then the best recipe on the second; the best trial wins."""
    trials, best, best_classifier, head_seconds = [], None, None, {}
    first = ranked[0].row
    plan = [(ranked[0], recipe) for recipe in RECIPES]
    while plan:
        candidate, recipe = plan.pop(0)
        shallower = trials[-1] if trials and candidate is ranked[0] else None  # the second base runs one recipe
        if recipe.unfreeze_blocks >= 2 and shallower is not None and shallower is not best:
            note = (shallower.note if shallower.note.startswith("not tried") else
                    f"not tried: {shallower.recipe} did not fit the budget" if shallower.seconds is None else
                    f"not tried: {shallower.recipe} did not beat {best.recipe}")
            trials.append(Trial(recipe.name, first.backbone, first.image_size, 0.0, note=note))
        else:
            trial, classifier = _try(candidate, recipe, clock, weights, seed, cache, head_seconds, verbose)
            trials.append(trial)
            if trial.seconds is not None and recipe_search.is_better(trial, best):
                best, best_classifier = trial, classifier
        if not plan and candidate is ranked[0] and len(ranked) > 1 and best is not None:
            plan.append((ranked[1], next(r for r in RECIPES if r.name == best.recipe)))
    if best is None:
        raise ValueError(f"The budget is too small to train any recipe: {trials[0].note}. "
                         f"Received: budget={clock.seconds:g} s")
    if verbose:
        print(f"Chosen: {best.recipe} on {best.backbone} at {best.image_size} px, validation accuracy "
              f"{best.validation_accuracy:.1%} ({format_seconds(clock.elapsed())} of "
              f"{format_seconds(clock.seconds)} spent).")
    return trials, best, best_classifier


def _try(candidate, recipe, clock, weights, seed, cache, head_seconds, verbose):
    """One trial, if its estimate fits: `(Trial, classifier or None)`."""
    row, costs = candidate.row, candidate.costs
    key = (row.backbone, row.image_size)
    if recipe.unfreeze_blocks and recipe.unfreeze_blocks not in costs.top_share:
        costs.top_share[recipe.unfreeze_blocks] = recipe_search.top_share(candidate.classifier,
                                                                          recipe.unfreeze_blocks)
    counts = {split: sum(candidate.splits.counts[split]) for split in ("train", "validation")}
    estimated = recipe_search.estimate(recipe, costs, counts, head_seconds.get(key))
    name = f"{recipe.name} on {row.backbone} at {row.image_size} px"
    if clock.plan(name, estimated) is None:
        trial = Trial(recipe.name, row.backbone, row.image_size, estimated, note=step_note(clock))
        if verbose:
            print(f"Recipe {name}: {trial.note}")
        return trial, None
    if verbose:
        print(f"Recipe {name}: {recipe.description} (about {estimated:.0f} s, {clock.left():.0f} s left) ...")
    trial, classifier, phase1 = recipe_search.run_trial(
        recipe, candidate.splits, row.backbone, row.image_size, weights=weights, seed=seed,
        deadline=clock.deadline(), estimated=estimated, feature_cache=cache)
    if phase1 is not None:
        head_seconds.setdefault(key, phase1)
    if verbose:
        loss = "" if trial.validation_loss is None else f", loss {trial.validation_loss:.3f}"
        print(f"  validation accuracy {trial.validation_accuracy:.1%}{loss} in {trial.seconds:.0f} s"
              + (f"; {trial.note}" if trial.note else ""))
    return trial, classifier


def step_note(clock):
    return clock.steps[-1].note


def _check_splits(data_dir, splits, split):
    if splits.validation is None:
        raise ValueError(f"auto chooses on validation images, and {data_dir} gave none. Set a validation split "
                         f"above 0 or add a validation/ folder. Received: "
                         f"validation_split={split['validation_split']}")


def _report_seconds(candidate):
    """The report's held-out predictions with this base: validation and test images, one pass each."""
    held_out = sum(candidate.splits.counts["validation"]) + sum(candidate.splits.counts.get("test", []))
    return held_out * candidate.costs.per_image


def format_auto(result):
    """The bases and recipes `auto` tried, and its choice, as text tables."""
    return format_tables(auto_tables(result.to_dict()))


def _write_run(out, result, clock, verbose):
    """The run folder of the chosen classifier, `auto.json`, the report; the test figure read last."""
    result.classifier.save(out, overwrite=True, data_summary=result.splits.to_dict())
    write_json_atomically(out / AUTO_FILE, result.to_dict())
    record = result.classifier.training_record  # the trial's own, with its validation outputs
    write_report(out, result.splits, classifier=result.classifier, verbose=verbose,
                 validation_outputs=None if record is None else record.validation_outputs)
    metrics = run_metrics(out) or {}
    result.test_accuracy = metrics.get("accuracy") if metrics.get("split") == "test" else None
    result.seconds, result.finished = clock.elapsed(), True
    write_json_atomically(out / AUTO_FILE, result.to_dict())
    if verbose:
        test = "" if result.test_accuracy is None else f", test accuracy {result.test_accuracy:.1%}"
        print(f"Saved the run to {out}: validation accuracy {result.chosen.validation_accuracy:.1%}{test}; "
              f"{format_seconds(result.seconds)} of the {format_seconds(result.budget_seconds)} budget.")
