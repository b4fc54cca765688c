"""A folder of images read as a run's held-out data: all of it, or one part of the run's own split."""

import dataclasses

import numpy as np
import tensorflow as tf

from transfer_tf.core.checks import check_choice
from transfer_tf.data.directory import from_directory
from transfer_tf.data.splits import all_held_out
from transfer_tf.model.run_data import resize_policy, run_data, split_settings
from transfer_tf.model.saving import DATA_FILE

EVALUATION_SPLITS = ("all", "train", "validation", "test")


@dataclasses.dataclass
class HeldOut:
    """Images of a folder a run is judged on.

    Attributes:
        dataset: batched `(images, labels)`, labels as indices of the run's
            classes, in file order.
        paths: list of str. The files, in dataset order.
        resize: str. The run's resize policy.
    """

    dataset: object
    paths: list
    resize: str


def read_held_out(run, classifier, data_dir, *, split="all", batch_size=32, verbose=1):
    """Reads `data_dir` for `classifier` (loaded from `run`): every image, or that part of the run's split.

    Raises:
        ValueError: for a split the run did not record, one that holds no
            images, or class folders the run does not know.
    """
    check_choice("split", split, EVALUATION_SPLITS)
    data = run_data(run)
    settings = dict(validation_split=0.0, test_split=0.0, seed=0)
    if split != "all":
        if data is None:
            raise ValueError(
                f"{run} does not record how its data was split ({DATA_FILE} is missing); "
                f"use split='all' on a held-out folder. Received: split={split!r}"
            )
        settings = split_settings(data)
    resize = resize_policy(data)
    splits = from_directory(data_dir, image_size=classifier.image_size, batch_size=batch_size, resize=resize,
                            verbose=bool(verbose), **settings)
    part = "train" if split == "all" else split
    dataset = getattr(splits, part)
    if dataset is None:
        raise ValueError(f"The {split} split of {data_dir} holds no images.")
    unknown = sorted(set(splits.class_names) - set(classifier.class_names))
    if unknown:
        raise ValueError(
            f"{data_dir} has class folders the model does not know: {unknown}. Its classes "
            f"are {classifier.class_names}."
        )
    index = np.array([classifier.class_names.index(n) for n in splits.class_names], np.int32)
    if split == "all":  # the folder's own split put every image in "train", shuffled: read it in file order
        splits = all_held_out(splits)
        part, dataset = "validation", splits.validation
    paths = [str(path) for path, _ in splits.files[part]]
    return HeldOut(dataset.map(lambda x, y: (x, tf.gather(index, y))), paths, resize)
