"""TensorFlow's CPU settings: the fastest safe defaults, set before TensorFlow loads.

TensorFlow 2.21 turns its oneDNN kernels on by default only on x86 CPUs
with AVX-512 VNNI/BF16, AVX-VNNI or AMX. On CPUs with AVX2 and no such
extension (AMD EPYC Zen 2/3, Intel before Cascade Lake) they stay off, and
its own kernels, compiled for AVX, train 2 to 3.5 times slower (see
`benchmarks/cpu_settings.py`). oneDNN computes the same functions with
another order of floating-point operations, so results differ in the last
bits only. `apply_defaults` therefore sets `TF_ENABLE_ONEDNN_OPTS=1` on
every x86-64 CPU with AVX2, unless the user has set it, and only before
TensorFlow loads (TensorFlow reads it once). `import transfer_tf` and the
`transfer-tf` command call it first thing.

If TensorFlow was imported before transfer_tf on a CPU where that leaves
oneDNN off, a warning says once how to get the faster kernels.
`TRANSFER_TF_CPU_DEFAULTS=0` in the environment leaves every setting to
TensorFlow.
"""

import os
import platform
import sys
import warnings

from transfer_tf.core.system_info import cpu_description, cpu_flags

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
OPT_OUT = "TRANSFER_TF_CPU_DEFAULTS"
X86 = ("x86_64", "AMD64", "amd64")

_set_by_transfer_tf = {}
_warned = []


def recommended(flags=None, machine=None):
    """The environment variables transfer_tf recommends for a CPU (this one by default).

    Args:
        flags: set of str or `None`. CPU flags as `/proc/cpuinfo` lists them.
        machine: str or `None`. `platform.machine()`.

    Returns:
        dict of variable name to value.
    """
    flags = cpu_flags() if flags is None else set(flags)
    machine = platform.machine() if machine is None else machine
    if machine in X86 and "avx2" in flags:
        return {ONEDNN: "1"}
    return {}


def apply_defaults(environ=None):
    """Sets each recommended variable the user has not set, if TensorFlow is not loaded yet.

    Args:
        environ: mapping or `None`. Defaults to `os.environ`.

    Returns:
        dict: the variables this call set.
    """
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT) == "0":
        return {}
    missing = {k: v for k, v in recommended().items() if k not in environ}
    if "tensorflow" in sys.modules:
        _warn_if_slower(missing)
        return {}
    environ.update(missing)
    _set_by_transfer_tf.update(missing)
    return missing


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels (`None` if TensorFlow is not loaded)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow without this private module
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def cpu_summary():
    """The CPU and TensorFlow's CPU settings, for run folders and benchmark results.

    Returns:
        dict with `cpu` (model, cores, vector instructions; see
        `system_info.cpu_description`), `settings` (the TensorFlow variables in effect),
        `set_by_transfer_tf`, `onednn_enabled` and, once TensorFlow runs,
        its `intra_op_threads` and `inter_op_threads` (0: TensorFlow's
        choice, one per core).
    """
    cpu = cpu_description()
    environment = cpu.pop("environment")
    cpu.pop("all_flags")
    record = {"cpu": cpu, "settings": environment, "set_by_transfer_tf": dict(_set_by_transfer_tf),
              "onednn_enabled": onednn_enabled()}
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        record["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        record["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    return record


def _warn_if_slower(missing):
    if ONEDNN not in missing or _warned or onednn_enabled():
        return
    _warned.append(True)
    warnings.warn(
        "TensorFlow was imported before transfer_tf, so its oneDNN kernels stay off on this CPU "
        "and training runs 2-3x slower. Import transfer_tf before TensorFlow, or set "
        "TF_ENABLE_ONEDNN_OPTS=1 in the environment before Python starts.",
        stacklevel=3,
    )
