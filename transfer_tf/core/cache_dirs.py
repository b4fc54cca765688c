"""Where downloaded and computed files are kept between runs."""

import os
from pathlib import Path


def keras_cache_dir():
    """Returns the folder where Keras keeps downloaded weights files.

    That is `$KERAS_HOME/models`, by default `~/.keras/models`; Keras falls
    back to `/tmp/.keras/models` when its home folder is not writable.
    """
    try:
        from keras.src.backend import config as keras_backend_config

        home = keras_backend_config.keras_home()
    except (ImportError, AttributeError):  # a Keras without the private accessor
        home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    home = os.path.expanduser(home)
    if not os.access(home, os.W_OK) and os.path.isdir("/tmp"):
        home = os.path.join("/tmp", ".keras")
    return os.path.join(home, "models")


def feature_cache_dir():
    """Where on-disk feature caches go by default: `$TRANSFER_TF_CACHE` or `~/.cache/transfer_tf/features`."""
    root = os.environ.get("TRANSFER_TF_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "transfer_tf" / "features"
