"""The documentation site builds with no warning, its API reference shows every public name,
and the README stays a few screens long."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import transfer_tf as ttf

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]  # a broken link or reference fails --strict
    return out


def test_the_api_reference_shows_every_public_name(site):
    html = (site / "reference" / "api" / "index.html").read_text()
    shown = set(re.findall(r'id="(transfer_tf\.[\w.]+)"', html))
    expected = {f"transfer_tf.{module}.{name}" for name, module in ttf._PUBLIC.items()}
    for module in ttf._SUBMODULES.values():
        expected |= {f"transfer_tf.{module}.{name}" for name in importlib.import_module(f"transfer_tf.{module}").__all__}
    assert expected - shown == set()


def test_the_cli_reference_shows_every_command(site):
    from transfer_tf.cli import COMMANDS

    html = (site / "reference" / "cli-options" / "index.html").read_text()
    for command in COMMANDS:
        assert f"transfer-tf {command}" in html


def test_the_tutorials_render_the_notebooks(site):
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert (site / "tutorials" / notebook.stem / "index.html").is_file(), notebook.name


def test_the_readme_fits_on_a_few_screens():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES
