"""Start-up: `import transfer_tf` and `transfer-tf --help` load no TensorFlow; CPU settings come first."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from transfer_tf.core import cpu_settings

PACKAGE = Path(__file__).resolve().parents[1] / "transfer_tf"


def _python(code, **env):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_import_and_help_load_no_tensorflow_matplotlib_or_sklearn():
    heavy = "[m for m in ('tensorflow', 'keras', 'matplotlib', 'sklearn') if m in sys.modules]"
    assert _python(f"import sys, transfer_tf; print({heavy})") == "[]"
    code = f"import sys; from transfer_tf import cli; cli.build_parser().format_help(); print({heavy})"
    assert _python(code) == "[]"


@pytest.mark.skipif(not cpu_settings.recommended(), reason="no setting recommended for this CPU")
def test_import_sets_the_recommended_settings_but_never_overrides_the_users():
    env = {k: v for k, v in os.environ.items() if k != cpu_settings.ONEDNN}
    code = ("import os, transfer_tf; from transfer_tf.core import cpu_settings; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), cpu_settings.cpu_summary()['set_by_transfer_tf'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.split()[0] == "1" and "TF_ENABLE_ONEDNN_OPTS" in done.stdout
    assert _python(code, TF_ENABLE_ONEDNN_OPTS="0") == "0 {}"
    # TensorFlow reads it when it loads: the run really has oneDNN on.
    code = "import transfer_tf, tensorflow; from transfer_tf.core import cpu_settings; print(cpu_settings.onednn_enabled())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.stdout.strip().splitlines()[-1] == "True"


def test_recommendations_by_cpu():
    assert cpu_settings.recommended({"avx", "avx2", "fma"}, "x86_64") == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert cpu_settings.recommended({"avx", "sse4_2"}, "x86_64") == {}
    assert cpu_settings.recommended({"asimd"}, "aarch64") == {}


def test_tensorflow_imported_first_on_a_slow_path_warns_once(monkeypatch):
    monkeypatch.setattr(cpu_settings, "recommended", lambda: {"TF_ENABLE_ONEDNN_OPTS": "1"})
    monkeypatch.setattr(cpu_settings, "onednn_enabled", lambda: False)
    monkeypatch.setattr(cpu_settings, "_warned", [])
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    environ = {}
    with pytest.warns(UserWarning, match="Import transfer_tf before TensorFlow, or set TF_ENABLE_ONEDNN_OPTS=1"):
        assert cpu_settings.apply_defaults(environ) == {}
    assert environ == {}  # too late to set: TensorFlow read the environment already
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu_settings.apply_defaults(environ)  # once only
