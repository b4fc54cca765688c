import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import transfer_tf as ttf  # noqa: E402  (first: it sets TensorFlow's CPU settings before TensorFlow loads)
from transfer_tf.core.system_info import usable_cores  # noqa: E402
import keras  # noqa: E402, I001
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def random_images(count, size, seed=0):
    """Raw-pixel images in [0, 255], float32, shape (count, size, size, 3)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (count, size, size, 3)).astype("float32")


def separable_data(count, size, num_classes, seed=0):
    """Images whose class sets their brightness, so a head can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_classes
    base = (labels[:, None, None, None] + 0.5) * (255.0 / num_classes)
    noise = rng.normal(0, 10, (count, size, size, 3))
    return np.clip(base + noise, 0, 255).astype("float32"), labels


def weight_groups(keras_file):
    """The top-level groups of a `.keras` file's weights (`layers`, and `optimizer` if it was saved)."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(keras_file) as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(io.BytesIO(raw.read()), "r") as weights:
            return set(weights)


def train_to_resume(backup_dir, cache, callbacks=()):
    """The small two-phase run the resume tests kill and resume (and run whole, for reference)."""
    x, y = separable_data(48, 32, 3)
    vx, vy = separable_data(15, 32, 3, seed=1)
    clf = ttf.ImageClassifier.from_backbone("vgg16", num_classes=3, image_size=32, weights=None, seed=0)
    ttf.fine_tune(clf, (x, y), (vx, vy), head_epochs=4, fine_tune_epochs=4, batch_size=16, seed=0,
                  verbose=0, backup_dir=backup_dir, callbacks=list(callbacks), feature_cache=cache)
    return clf.get_weights()


# Memory per worker for `-n auto`: a worker keeps what TensorFlow allocated in each module it ran
# (clearing Keras's session after each module freed none of it); over the whole suite on 2 cores
# three workers held up to 22 GB together, the largest 10.6 GB, and 4 GB stayed free of 24.
WORKER_MEMORY_GIB = 7


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one and a half workers per core, as many as memory holds.

    Most of a test's time is TensorFlow tracing a network on one core, so one worker per core
    leaves the CPU idle while both trace; on 2 cores three workers ran the quick tests in 70 % of
    the time two took (the numbers are in setup.cfg). `PYTEST_XDIST_AUTO_NUM_WORKERS` overrides it, as in
    pytest-xdist, and `-n N` sets it outright.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    cores = usable_cores() or 1
    workers = max(2, cores + cores // 2)
    try:
        with open("/proc/meminfo") as meminfo:
            available_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return workers
    return max(1, min(workers, available_kib // (WORKER_MEMORY_GIB * 1024 ** 2)))


def pytest_collection_modifyitems(session, config, items):
    """Runs the modules with the most slow tests first, then the larger ones.

    With `--dist loadfile` each module goes to one worker; started last, a module of long
    end-to-end runs would keep one worker busy while the other has nothing left to do.
    """
    modules = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)

    def weight(module):
        tests = modules[module]
        return -sum(test.get_closest_marker("slow") is not None for test in tests), -len(tests)

    items[:] = [item for module in sorted(modules, key=weight) for item in modules[module]]


def pytest_terminal_summary(terminalreporter):
    """The modules that took longest (set-up, tests and tear-down), to balance the workers."""
    seconds = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) in ("setup", "call", "teardown"):
                module = report.nodeid.split("::")[0]
                seconds[module] = seconds.get(module, 0.0) + report.duration
    if seconds:
        terminalreporter.write_sep("=", "slowest 10 modules")
        for module, total in sorted(seconds.items(), key=lambda item: -item[1])[:10]:
            terminalreporter.write_line(f"{total:8.1f}s {module}")
