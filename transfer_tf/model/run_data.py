"""What a run folder says about its data: how it was read and split, and its metrics.

A run folder's `data.json` records the source of its images and the split
settings, so its data can be read again, split exactly as in training, for
evaluation, export and reports.
"""

from pathlib import Path

from transfer_tf.data.directory import from_directory
from transfer_tf.data.solar_cells import elpv
from transfer_tf.data.splits import all_held_out
from transfer_tf.model.saving import CONFIG_FILE, DATA_FILE, METRICS_FILE, read_json


def run_data(run):
    """The run's `data.json`, or `None` when it has none."""
    path = Path(run) / DATA_FILE
    return read_json(path) if path.is_file() else None


def run_metrics(run):
    """The run's `metrics.json`, or `None` when it has none."""
    path = Path(run) / METRICS_FILE
    return read_json(path) if path.is_file() else None


def split_settings(data):
    """The split fractions and seed a run's data was split with."""
    return {k: data["source"][k] for k in ("validation_split", "test_split", "seed")}


def resize_policy(data):
    """The resize policy a run was trained with (runs without `data.json`: stretch)."""
    return ((data or {}).get("source") or {}).get("resize", "stretch")


def run_splits(run, data_dir=None, *, batch_size=32, verbose=True):
    """Re-reads the data a run was trained on, split as it was split then.

    Args:
        run: str or path. A run folder.
        data_dir: str, path or `None`. A folder of class sub-folders to use
            instead of the run's recorded source. Defaults to `None`.
        batch_size: int. Defaults to `32`.
        verbose: bool. Defaults to `True`.

    Returns:
        `ImageSplits`, or `None` when the run records no source that can be
        read again (arrays, TFDS) and no `data_dir` is given.

    Raises:
        FileNotFoundError: if the recorded data folder no longer exists.
    """
    data = run_data(run)
    source = (data or {}).get("source") or {}
    image_size = tuple(read_json(Path(run) / CONFIG_FILE)["image_size"])
    settings = dict(
        image_size=image_size, resize=resize_policy(data), batch_size=batch_size,
        verbose=verbose, **(split_settings(data) if source else {}),
    )
    if data_dir is None and source.get("kind") == "elpv":
        return elpv(task=source["task"], module_type=source["module_type"], **settings)
    if data_dir is None and source.get("kind") == "directory":
        data_dir = source["path"]
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(
                f"{run} was trained on {data_dir}, which no longer exists. Pass the images "
                "with --data DIR (data=... in Python)."
            )
    if data_dir is None:
        return None
    splits = from_directory(data_dir, **settings)
    return all_held_out(splits) if source.get("held_out") else splits
