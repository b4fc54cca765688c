"""Labelled images in: folders, arrays, TensorFlow Datasets, the ELPV set.

Every loader returns `ImageSplits`: batched `tf.data` datasets of raw RGB
pixels and class indices for training, validation and test, with the class
counts and any files that were skipped. Any batched `tf.data.Dataset` of
`(images, labels)` can also go straight to `fine_tune`. `inputs` turns
what a trainer is given (splits, datasets or arrays) into its batches.

Imports: `core` only.
"""

from transfer_tf.core.choices import AUGMENTATIONS, RESIZE_POLICIES
from transfer_tf.data.augment import augmentation
from transfer_tf.data.directory import UnlabelledImages, from_directory, list_images, unlabelled_images
from transfer_tf.data.exclusions import read_exclusions
from transfer_tf.data.images import IMAGE_EXTENSIONS, check_image, read_image
from transfer_tf.data.solar_cells import ELPV_LICENCE, ElpvArrays, elpv, elpv_arrays
from transfer_tf.data.sources import from_arrays, from_tfds
from transfer_tf.data.split import stratified_sample
from transfer_tf.data.splits import ImageSplits

__all__ = [
    "AUGMENTATIONS",
    "ELPV_LICENCE",
    "ElpvArrays",
    "IMAGE_EXTENSIONS",
    "RESIZE_POLICIES",
    "ImageSplits",
    "UnlabelledImages",
    "augmentation",
    "check_image",
    "elpv",
    "elpv_arrays",
    "from_arrays",
    "from_directory",
    "from_tfds",
    "list_images",
    "read_exclusions",
    "read_image",
    "stratified_sample",
    "unlabelled_images",
]
