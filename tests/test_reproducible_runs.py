"""The same command with the same `--seed`, run in two processes, gives the same run.

Measured on this stack (TensorFlow 2.21, oneDNN on, 2 threads): the two
processes agree bit for bit, histories and weights alike, so the tests ask
for equality. Timings are the only fields that differ.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import transfer_tf as ttf

from conftest import random_images
from image_files import write_class_folder

TINY = ["--backbone", "vgg16", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--head-epochs", "1", "--fine-tune-epochs", "1", "--seed", "0", "--quiet"]
pytestmark = pytest.mark.slow


def cli(*args):
    """Runs `transfer-tf` in a fresh process, as a user would."""
    completed = subprocess.run([sys.executable, "-m", "transfer_tf.cli", *map(str, args)],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def without_timings(record):
    if isinstance(record, dict):
        return {k: without_timings(v) for k, v in record.items() if k not in ("seconds", "total_seconds")}
    if isinstance(record, list):
        return [without_timings(v) for v in record]
    return record


def same_model(first, second, images):
    """Both run folders hold the same weights, and so predict the same."""
    a, b = ttf.load(first), ttf.load(second)
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)
    np.testing.assert_array_equal(a.predict(images, verbose=0), b.predict(images, verbose=0))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeded")
    rng = np.random.default_rng(0)
    write_class_folder(root / "source", ["a", "b", "c"], per_class=10,
                       value_of=lambda label: int(40 + 70 * label + rng.integers(-25, 25)))
    write_class_folder(root / "target", ["a", "b", "c"], per_class=6,
                       value_of=lambda label: int(60 + 50 * label + rng.integers(-25, 25)))
    return root


def test_train_twice_with_one_seed_gives_the_same_run(folders, tmp_path):
    for name in ("first", "second"):
        cli("train", folders / "source", *TINY, "--out", tmp_path / name)
    histories = [json.loads((tmp_path / n / "history.json").read_text()) for n in ("first", "second")]
    assert without_timings(histories[0]) == without_timings(histories[1])
    same_model(tmp_path / "first", tmp_path / "second", random_images(8, 32))


def test_compare_and_adapt_twice_with_one_seed_give_the_same_results(folders, tmp_path):
    compare = ["--classical", "none", *TINY]
    for name in ("first", "second"):
        cli("compare", folders / "source", *compare, "--out", tmp_path / f"compare-{name}")
    results = [json.loads((tmp_path / f"compare-{n}" / "compare.json").read_text()) for n in ("first", "second")]
    assert without_timings(results[0]) == without_timings(results[1])

    cli("train", folders / "source", *TINY, "--out", tmp_path / "run")
    for name in ("first", "second"):
        cli("adapt", tmp_path / "run", folders / "source", folders / "target", "--method", "dann",
            *TINY[6:], "--out", tmp_path / f"dann-{name}")
    same_model(tmp_path / "dann-first", tmp_path / "dann-second", random_images(8, 32))
    histories = [json.loads((tmp_path / f"dann-{n}" / "history.json").read_text()) for n in ("first", "second")]
    assert without_timings(histories[0]) == without_timings(histories[1])
