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


def run_jobs(*commands):
    """Runs `transfer-tf` commands one after another in one fresh process, as a user's script would."""
    script = "from transfer_tf import cli\nfor command in %r:\n    assert cli.main(command) == 0, command\n"
    completed = subprocess.run([sys.executable, "-c", script % [list(map(str, c)) for c in commands]],
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


def test_train_and_adapt_twice_with_one_seed_give_the_same_results(folders, tmp_path):
    # Each process runs the two jobs in turn: every job seeds itself at its start, so what ran
    # before it in the process must not matter either. (`compare` builds and trains with the same
    # functions, each seeding itself: `from_backbone`, `fine_tune`, `train_from_scratch`.)
    for name in ("first", "second"):
        run_jobs(["train", folders / "source", *TINY, "--out", tmp_path / name],
                 ["adapt", tmp_path / name, folders / "source", folders / "target", "--method", "dann", *TINY[6:],
                  "--out", tmp_path / f"dann-{name}"])
    for run in ("{}", "dann-{}"):
        histories = [json.loads((tmp_path / run.format(n) / "history.json").read_text()) for n in ("first", "second")]
        assert without_timings(histories[0]) == without_timings(histories[1])
        same_model(tmp_path / run.format("first"), tmp_path / run.format("second"), random_images(8, 32))
