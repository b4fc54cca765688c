"""Silences TensorFlow's native start-up lines for the `transfer-tf` command.

TensorFlow's C++ code logs through absl before any setting can reach it
(`TF_CPP_MIN_LOG_LEVEL` no longer stops the oneDNN and CUDA lines), so the
command line would open with half a dozen lines of noise on every run. The
`transfer-tf` command (not with `--debug`) points native stderr at
/dev/null while TensorFlow loads and probes its devices. Library users see
TensorFlow's output unchanged.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr(enabled):
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def load_tensorflow_quietly(quiet=True):
    """Imports TensorFlow and probes its devices, native stderr silenced when `quiet`."""
    if "tensorflow" in sys.modules:
        return
    if quiet:  # TensorFlow's INFO and WARNING lines during the run too
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_stderr(quiet):
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
    if quiet:  # e.g. "triggered tf.function retracing": advice for TensorFlow's developers, not ours
        tf.get_logger().setLevel("ERROR")
