"""Filling the feature cache: the frozen part run once per image, in memory or in verified files.

Files live under a folder keyed on the backbone, a hash of the base
weights, the image size, the cut point and a fingerprint of the data. Each
array's checksum is recorded in `key.json`; a damaged file is recomputed,
and a folder lock lets two runs share one folder.
"""

import functools
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer_tf.core.cache_dirs import feature_cache_dir
from transfer_tf.core.integrity import damage, fingerprint, folder_lock, write_atomically
from transfer_tf.model.precision import compute_dtypes

FORMAT_VERSION = 2  # 2: key.json records each array's shape, dtype, size and checksum


class CacheFiller:
    """Computes (or reloads) the cached tensors of each split."""

    def __init__(self, classifier, recipes, cut, bottom, top):
        self.classifier = classifier
        self.recipes = recipes
        self.cut = cut
        self.bottom = bottom
        self.top = top

    def fill(self, mode, memory_budget, report, verbose):
        """Per split, per kind (`features`, `activations`), an array; fills in the `CacheReport`."""
        kinds = {"features": self.classifier.base.output.shape[1:]}
        if self.cut is not None:
            kinds["activations"] = self.bottom.output.shape[1:]
        counts = {split: recipe.count for split, recipe in self.recipes.items()}
        total = sum(counts.values()) * sum(int(np.prod(s)) for s in kinds.values()) * 4
        on_disk = str(mode) != "memory" and (str(mode) != "auto" or total > memory_budget)
        folder = None
        if on_disk:
            folder = (feature_cache_dir() if str(mode) == "auto" else Path(mode)) / self._key()
        report.location = "memory" if folder is None else str(folder)
        report.megabytes = total / 2**20
        intro = None
        start = time.perf_counter()
        if verbose:
            cut = f", and the activations below {self.cut} for phase 2" if self.cut else ""
            where = "in memory" if folder is None else f"in {folder}"
            images = " + ".join(f"{n} {s}" for s, n in counts.items())
            intro = (f"Feature cache: running the frozen base once over {images} images{cut} "
                     f"({report.megabytes:,.0f} MB {where}) ...")
        if folder is None:
            if verbose:
                print(intro)
            arrays = {split: self._compute(recipe, kinds, None, split, verbose)
                      for split, recipe in self.recipes.items()}
            computed = list(self.recipes)
        else:
            with folder_lock(folder):  # a second run on this folder waits, then reuses
                arrays, computed = self._fill_folder(folder, kinds, intro if verbose else None, verbose)
            if verbose and not computed:
                print(f"Feature cache: reusing {report.megabytes:,.0f} MB from {folder} (verified)")
        report.seconds = time.perf_counter() - start
        report.reused = not computed
        if verbose and computed:
            print(f"Feature cache: done in {report.seconds:.1f} s.")
        return arrays

    def _fill_folder(self, folder, kinds, intro, verbose):
        """Loads each split's verified files, computes the rest; returns `(arrays, computed splits)`.

        `key.json` records every array's shape, dtype, size and checksum; it
        is written last, atomically. A file that does not match its record
        (truncated, zeroed, changed, missing) is never used: its split is
        computed again, with one line saying so.
        """
        key_file = folder / "key.json"
        try:
            records = json.loads(key_file.read_text()).get("arrays", {}) if key_file.is_file() else {}
        except (OSError, ValueError, AttributeError):
            records = {}
            print(f"Feature cache: {key_file} is damaged (unreadable); computing the features again.",
                  file=sys.stderr)
        arrays, computed = {}, []
        for split, recipe in self.recipes.items():
            expected = {k: [recipe.count, *map(int, shape)] for k, shape in kinds.items()}
            loaded, reason = _load_verified(folder, split, expected, records)
            if loaded is not None:
                arrays[split] = loaded
                continue
            if reason is not None:
                print(f"Feature cache: {reason}; computing that split again.", file=sys.stderr)
            if intro is not None:
                print(intro)
                intro = None
            arrays[split] = self._compute(recipe, kinds, folder, split, verbose)
            records.update({f"{split}_{k}.npy": {"shape": expected[k], "dtype": "float32",
                                                 **fingerprint(folder / f"{split}_{k}.npy")} for k in kinds})
            computed.append(split)
        if computed:
            write_atomically(key_file, lambda path: path.write_text(
                json.dumps({**self._key_fields, "arrays": records}, indent=2) + "\n"))
        return arrays, computed

    def _compute(self, recipe, kinds, folder, split, verbose):
        arrays, partial = {}, {}
        for kind, shape in kinds.items():
            full = (recipe.count, *shape)
            if folder is None:
                arrays[kind] = np.empty(full, np.float32)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                # Named uniquely: the workers of a cluster may fill one shared folder at once.
                partial[kind] = folder / f".{split}_{kind}.{uuid.uuid4().hex}.npy.partial"
                arrays[kind] = np.lib.format.open_memmap(partial[kind], mode="w+", dtype=np.float32, shape=full)
        forward = self._forward
        progress = keras.utils.Progbar(recipe.count, unit_name="image") if verbose else None
        for start in range(0, recipe.count, recipe.batch_size):
            rows = slice(start, min(start + recipe.batch_size, recipe.count))
            # Decoded here, not in a parallel pipeline: threads decoding beside
            # the forward pass slowed it by up to 60 % on 2 cores.
            images = np.asarray(recipe.images_for(np.arange(rows.start, rows.stop)), np.float32)
            outputs = forward(images)
            for kind in kinds:
                arrays[kind][rows] = outputs[kind].numpy()
            if progress is not None:
                progress.update(rows.stop)
        for kind, path in partial.items():
            arrays[kind].flush()
            del arrays[kind]
            final = folder / f"{split}_{kind}.npy"
            os.replace(path, final)  # only complete files get the real name
            arrays[kind] = np.load(final, mmap_mode="r")
        return arrays

    @functools.cached_property
    def _forward(self):
        """The frozen base as one `tf.function`, traced once for every split and batch size."""
        classifier = self.classifier

        @tf.function(input_signature=[_image_spec(classifier)])
        def forward(images):
            inputs = classifier.preprocessor(images)
            if self.cut is None:
                return {"features": classifier.base(inputs, training=False)}
            activations = self.bottom(inputs, training=False)
            return {"activations": activations, "features": self.top(activations, training=False)}

        return forward

    @functools.cached_property
    def _key_fields(self):
        classifier = self.classifier
        digest = hashlib.sha256()
        for weight in classifier.base.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
        return {
            "format_version": FORMAT_VERSION,
            "backbone": classifier.backbone_name,
            "base_weights_sha256": digest.hexdigest(),
            "image_size": list(classifier.image_size),
            "preprocessing": classifier.preprocessing,
            "compute_dtypes": compute_dtypes(classifier.base),
            "cut": self.cut,
            "data": {split: recipe.fingerprint() for split, recipe in self.recipes.items()},
        }

    def _key(self):
        text = json.dumps(self._key_fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def _load_verified(folder, split, expected, records):
    """`(arrays, None)`, memory-mapped, if every file of the split matches its record, else `(None, reason)`.

    The reason is `None` when nothing of the split was ever written (a new entry).
    """
    arrays = {}
    for kind, shape in expected.items():
        name = f"{split}_{kind}.npy"
        path, record = folder / name, records.get(name)
        if record is None and not path.exists():
            return None, None
        reason = damage(path, record)
        if reason is None and (record.get("shape") != shape or record.get("dtype") != "float32"):
            reason = f"it holds {record.get('dtype')} {record.get('shape')}, not float32 {shape}"
        if reason is None:
            try:
                arrays[kind] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                reason = f"unreadable ({error})"
        if reason is None and (list(arrays[kind].shape) != shape or arrays[kind].dtype != np.float32):
            reason = f"its header says {arrays[kind].dtype} {list(arrays[kind].shape)}, not float32 {shape}"
        if reason is not None:
            return None, f"{path} is damaged: {reason}"
    return arrays, None


def _image_spec(classifier):
    return tf.TensorSpec((None, *classifier.image_size, 3), tf.float32)
