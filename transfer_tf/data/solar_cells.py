"""The ELPV solar-cell images (the `elpv-dataset` package), offline: as splits, or as arrays."""

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transfer_tf.core.checks import check_choice, normalise_image_size
from transfer_tf.core.choices import RESIZE_POLICIES
from transfer_tf.data.images import read_image
from transfer_tf.data.splits import (
    splits_from_files,
    validate_split_args,
)

ELPV_LICENCE = (
    "ELPV dataset (Deitsch et al., Buerhop-Lutz et al.), CC BY-NC-SA 4.0: "
    "non-commercial use, attribution, share-alike."
)
ELPV_TASKS = {
    "defective": ["functional", "defective"],
    "probability": ["0", "1/3", "2/3", "1"],
}
ELPV_MODULE_TYPES = ("mono", "poly")


def elpv(
    *,
    image_size=96,
    task="defective",
    module_type=None,
    validation_split=0.2,
    test_split=0.2,
    seed=0,
    batch_size=32,
    augment="none",
    resize="stretch",
    cache=False,
    verbose=True,
):
    """The ELPV solar-cell dataset: 2,624 electroluminescence images, offline.

    300 x 300 grayscale images of solar cells from the `elpv-dataset`
    package, each labelled by experts with a defect probability of 0, 1/3,
    2/3 or 1, and the module type (monocrystalline or polycrystalline), which
    gives two domains for transfer experiments.

    Licence: CC BY-NC-SA 4.0 (non-commercial use, attribution, share-alike).
    Cite Deitsch et al., "Automatic classification of defective photovoltaic
    module cells in electroluminescence images", Solar Energy 185 (2019).

    Args:
        image_size: int or tuple. Defaults to `96`.
        task: str. `"defective"` (functional: probability < 0.5, defective:
            >= 0.5) or `"probability"` (4 classes). Defaults to
            `"defective"`.
        module_type: str or `None`. `"mono"` or `"poly"` keeps one module
            type. Defaults to `None` (both).
        validation_split: float. As in `from_directory`, and so are
            `test_split` (here defaulting to `0.2`), `seed`, `batch_size`,
            `augment`, `resize`, `cache` and `verbose`.

    Returns:
        `ImageSplits`.

    Raises:
        ImportError: if the `elpv-dataset` package is not installed.
        ValueError: for an unknown task or module type.
    """
    _check_elpv_args(task, module_type)
    validate_split_args(
        validation_split=validation_split, test_split=test_split,
        batch_size=batch_size, augment=augment, resize=resize,
    )
    table = elpv_table()
    items = []
    for path, probability, kind in table:
        if module_type is None or kind == module_type:
            items.append((path, _elpv_label(probability, task), path.name))
    splits = splits_from_files(
        items, ELPV_TASKS[task], image_size=normalise_image_size(image_size),
        resize=resize, validation_split=validation_split, test_split=test_split, seed=seed,
        batch_size=batch_size, augment=augment, cache=cache, skipped=[],
        source={"kind": "elpv", "task": task, "module_type": module_type,
                "licence": "CC-BY-NC-SA-4.0"},
    )
    if verbose:
        print(f"ELPV: {len(items)} solar-cell images. {ELPV_LICENCE}")
        print(splits.summary())
    return splits


@dataclasses.dataclass
class ElpvArrays:
    """The ELPV images in memory, in the package's order.

    Attributes:
        images: uint8 array `(n, height, width, 3)`.
        labels: int array `(n,)`, indices into `class_names`.
        class_names: list of str.
        module_types: array `(n,)` of `"mono"` or `"poly"`.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list
    module_types: np.ndarray


def elpv_arrays(*, image_size=96, task="defective", module_type=None, resize="stretch"):
    """The ELPV images as arrays, for experiments that split them themselves.

    Decodes every image once (in threads). See `elpv` for the data, its
    licence and the tasks.

    Args:
        image_size: int or tuple. Defaults to `96`.
        task: str. `"defective"` or `"probability"`. Defaults to
            `"defective"`.
        module_type: str or `None`. `"mono"`, `"poly"` or `None` (both).
            Defaults to `None`.
        resize: str. Resize policy. Defaults to `"stretch"`.

    Returns:
        `ElpvArrays`.

    Raises:
        ImportError: if the `elpv-dataset` package is not installed.
        ValueError: for an unknown task, module type or resize policy.
    """
    _check_elpv_args(task, module_type)
    check_choice("resize", resize, RESIZE_POLICIES)
    size = normalise_image_size(image_size)
    rows = [row for row in elpv_table() if module_type is None or row[2] == module_type]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        images = list(pool.map(lambda row: read_image(row[0], size, resize), rows))
    return ElpvArrays(
        images=np.stack(images), labels=np.array([_elpv_label(p, task) for _, p, _ in rows]),
        class_names=list(ELPV_TASKS[task]), module_types=np.array([kind for _, _, kind in rows]),
    )


def _check_elpv_args(task, module_type):
    if task not in ELPV_TASKS:
        raise ValueError(f"task must be one of {list(ELPV_TASKS)}. Received: task={task!r}")
    if module_type not in (None, *ELPV_MODULE_TYPES):
        raise ValueError(
            f"module_type must be 'mono', 'poly' or None. Received: module_type={module_type!r}"
        )


def _elpv_label(probability, task):
    return int(probability >= 0.5) if task == "defective" else int(round(probability * 3))


def elpv_table():
    """`(path, defect probability, "mono"|"poly")` for every ELPV image."""
    try:
        import elpv_dataset
    except ImportError:
        raise ImportError(
            "The ELPV images come with the elpv-dataset package: "
            "pip install elpv-dataset (or pip install 'transfer_tf[demo]')."
        ) from None
    data_dir = Path(elpv_dataset.__file__).parent / "data"
    rows = np.genfromtxt(
        data_dir / "labels.csv", dtype=["|S19", "<f8", "|S4"], names=["path", "prob", "type"]
    )
    return [
        (data_dir / p.decode(), float(prob), t.decode())
        for p, prob, t in zip(rows["path"], rows["prob"], rows["type"])
    ]

