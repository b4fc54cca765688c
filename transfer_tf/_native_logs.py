"""Silences TensorFlow's native start-up lines for the `transfer-tf` command.

TensorFlow's C++ code logs through absl before any setting can reach it
(`TF_CPP_MIN_LOG_LEVEL` no longer stops the oneDNN and CUDA lines), so the
command line would open with half a dozen lines of noise on every run. For
the `transfer-tf` command only, and not with `--debug`, native stderr is
pointed at /dev/null while TensorFlow loads and probes its devices. Library
users see TensorFlow's output unchanged.
"""

import contextlib
import os
import sys


def running_cli():
    return os.path.basename(sys.argv[0]) == "transfer-tf" and "--debug" not in sys.argv


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


def load_tensorflow_quietly():
    """Imports TensorFlow (and probes devices) with native stderr silenced when in the CLI."""
    with quiet_native_stderr(running_cli()):
        import tensorflow as tf

        if running_cli():
            tf.config.list_physical_devices("GPU")
