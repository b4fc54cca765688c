"""One seed for a whole job: the same command with the same `--seed` repeats its run."""

import contextlib
import random

import keras
import numpy as np
from keras.src.backend.common import global_state
from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR


def seed_job(seed):
    """Seeds Python, NumPy and TensorFlow at the start of a job, before it builds any model.

    Every job of `cli.jobs` (and the demo) calls this first, so a head's or a
    domain classifier's initial weights, the shuffling and the dropout masks
    depend on the seed alone, not on what ran before in the process. The
    functions a job calls may seed again with the same value; that changes
    nothing.

    Args:
        seed: int or `None`. `None` leaves the generators as they are.
    """
    if seed is not None:
        keras.utils.set_random_seed(int(seed))


@contextlib.contextmanager
def preserved_random_state():
    """Runs a block without moving the random generators a job was seeded with.

    For work whose random draws are thrown away, such as building a model
    only to convert weights into a file: without it, a first run (which
    converts) would train differently from every later run (which does not).
    Python's and NumPy's states are restored, and so is Keras's global seed
    generator if one exists.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    generator_state = None if generator is None else np.asarray(generator.state.value)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if generator is not None:
            generator.state.assign(generator_state)
        global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, generator)
