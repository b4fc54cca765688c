"""The images `export` checks its files on, and calibrates int8 with."""

import numpy as np

from transfer_tf.data.splits import ImageSplits


def held_out_and_calibration(classifier, data, configs, num_parity_images):
    """Held-out `(images, labels, split)` and int8 calibration images per config."""
    if data is None:
        raise ValueError(
            "export needs held-out images to check the exported models against Keras. Pass "
            "data=ImageSplits (e.g. ttf.data.from_directory(...)), or --data DIR on the command "
            "line; a run folder trained on a directory or ELPV re-reads its own data."
        )
    if not isinstance(data, ImageSplits):
        raise TypeError(
            "data must be an ImageSplits (from ttf.data.from_directory, from_arrays, ...). "
            f"Received: {type(data).__name__}"
        )
    if list(data.class_names) != list(classifier.class_names):
        raise ValueError(
            f"The data's classes {list(data.class_names)} differ from the model's "
            f"{list(classifier.class_names)}."
        )
    split = "test" if data.test is not None else "validation"
    dataset = data.test if data.test is not None else data.validation
    if dataset is None:
        raise ValueError(
            "The data has no validation or test images to check the export on. Split some off "
            "(validation_split > 0)."
        )
    images, labels = take_images(dataset, num_parity_images, classifier.image_size)
    calibration = {}
    for config in configs:
        if config.precision == "int8":
            source = config.representative_data
            if source is None:
                source = data.train
            if source is None:
                raise ValueError(
                    "int8 needs representative images and the data has no training split (an adapted "
                    "run holds out all of its target images). Pass images of the deployment domain "
                    "with --data DIR (data=... in Python), or leave int8 out: --precision float32 "
                    "float16 dynamic-range.")
            calibration[config.name] = take_images(source, config.num_calibration_images, classifier.image_size)[0]
    return (images, labels, split), calibration


def take_images(source, limit, image_size):
    """Up to `limit` images (float32) and labels from an array or a dataset."""
    if isinstance(source, np.ndarray):
        images = np.asarray(source[:limit], np.float32)
        check_image_shape(images, image_size)
        return images, None
    images, labels = [], []
    count = 0
    for element in source:
        batch, batch_labels = element if isinstance(element, (tuple, list)) else (element, None)
        batch = np.asarray(batch, np.float32)
        if batch.ndim == 3:
            batch = batch[None]
            batch_labels = None if batch_labels is None else np.asarray(batch_labels)[None]
        images.append(batch)
        if batch_labels is not None:
            labels.append(np.asarray(batch_labels))
        count += len(batch)
        if count >= limit:
            break
    if not images:
        raise ValueError("The representative or held-out data holds no images.")
    images = np.concatenate(images)[:limit]
    check_image_shape(images, image_size)
    return images, (np.concatenate(labels)[:limit] if labels else None)


def check_image_shape(images, image_size):
    expected = (*image_size, 3)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"Images must be raw RGB pixels of shape (N, {expected[0]}, {expected[1]}, 3), the "
            f"model's input. Received shape {images.shape}."
        )
