"""Helpers the jobs share: the settings of a run, reading a folder, the training summary."""

from transfer_tf.data.directory import from_directory
from transfer_tf.data.exclusions import read_exclusions
from transfer_tf.methods.loading import load
from transfer_tf.model import distribute
from transfer_tf.training.settings import DataSettings, FineTuneSettings, ModelSettings

RUN_SETTINGS = {"model": ModelSettings, "data": DataSettings, "training": FineTuneSettings}
UNFINISHED_DIR = ".unfinished"  # a run's backup while it trains


def read_folder(data_dir, data, image_size, verbose):
    """A folder of class sub-folders read and split as `DataSettings` say."""
    return from_directory(
        data_dir, image_size=image_size, validation_split=data.validation_split,
        test_split=data.test_split, seed=data.seed, batch_size=data.batch_size, augment=data.augment,
        resize=data.resize, cache=data.cache, verbose=bool(verbose),
        exclude=None if data.exclude is None else read_exclusions(data.exclude),
    )


def local_copy(classifier, saved_at, strategy):
    """The classifier, or under several workers its saved copy outside the strategy (for the chief alone)."""
    return load(saved_at) if distribute.is_multi_worker(strategy) else classifier


def format_training(result):
    """One line per phase: epochs, time, and its best validation (or training) figure."""
    lines = []
    for phase in result.phases:
        key = next((k for k in ("val_accuracy", "accuracy", "loss") if k in phase.best), None)
        line = f"  {phase.name:<12} {phase.epochs:>3} epochs  {phase.seconds:>7.1f} s"
        value = phase.best.get(key)
        if value is not None:  # AdaBN's phase re-estimates statistics and has no metric
            shown = f"{value:.4f}" if key == "loss" else f"{value:.1%}"
            line += f"  best {key.replace('val_', 'validation ')}: {shown}"
        lines.append(line)
    return "\n".join(lines)
