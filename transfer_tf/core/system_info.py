"""What machine a run or a benchmark ran on: the CPU, its vector instructions, the TF settings.

Training speed on a CPU depends above all on its vector instructions
(AVX2, AVX-512, AVX-512 BF16, AMX) and on whether TensorFlow uses its
oneDNN kernels, so every run folder and benchmark result records them.
Reading `/proc/cpuinfo` needs no TensorFlow.
"""

import os
import platform

# Flags that change which kernels TensorFlow and oneDNN can use.
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
                "amx_bf16", "amx_int8", "amx_tile")
TF_ENVIRONMENT = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                  "OMP_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "TF_CPP_MIN_LOG_LEVEL")


def cpu_flags():
    """The set of CPU flags `/proc/cpuinfo` lists (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model():
    """The CPU's model name, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    """int: the cores this process may run on (its affinity on Linux, else every core; `None` if unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


def cpu_description():
    """A JSON-ready description of the CPU and TensorFlow's CPU settings.

    Returns:
        dict with `model`, `cores` (usable by this process), `vector_flags`
        (those of `VECTOR_FLAGS` present), `all_flags` (every flag, sorted)
        and `environment` (the TensorFlow CPU variables that are set).
    """
    flags = cpu_flags()
    return {
        "model": cpu_model(),
        "machine": platform.machine(),
        "cores": usable_cores(),
        "vector_flags": [f for f in VECTOR_FLAGS if f in flags],
        "all_flags": sorted(flags),
        "environment": {k: os.environ[k] for k in TF_ENVIRONMENT if k in os.environ},
    }
