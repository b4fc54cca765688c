"""The `Examples:` sections of the public docstrings run as written."""

import doctest
import importlib

import numpy as np
import pytest
import tensorflow as tf

import transfer_tf as ttf

# The modules whose public docstrings carry runnable examples.
MODULES = [
    "backbones.registry", "backbones.preprocessing", "model.classifier", "training.two_phase", "training.scratch",
    "evaluation.predictions", "data.augment", "data.sources", "data.split", "exporting.tflite",
    "evaluation.metrics", "evaluation.plots", "model.precision", "methods.adaptation", "methods.classical",
    "methods.pretraining", "training.lr_finder",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"transfer_tf.{name}")
    globs = {"np": np, "tf": tf, "transfer_tf": ttf, **{n: getattr(ttf, n) for n in ttf.__all__}}
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
