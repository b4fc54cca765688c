"""The notebooks run from top to bottom, offline, so they cannot rot.

They run with smaller settings than the ones they show (fewer pixels, images
and epochs): every cell still runs, in a fraction of the time. Their saved
outputs, with the full settings, come from `python notebooks/execute.py`.
"""

import importlib.util
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
QUICK = {
    "01_quickstart": "IMAGE_SIZE = 32\nIMAGES_PER_CLASS = 30\nHEAD_EPOCHS, FINE_TUNE_EPOCHS = 1, 1",
    "02_two_phase_fine_tuning": "IMAGE_SIZE = 32\nLABELLED, HELD_OUT = 60, 60\nHEAD_EPOCHS, FINE_TUNE_EPOCHS = 1, 1",
    "03_export_for_mobile": "IMAGE_SIZE = 32\nHEAD_EPOCHS, FINE_TUNE_EPOCHS = 1, 1\nLATENCY_REPEATS = 2\n"
                            "PRECISIONS = ['int8']\nFORMATS = ['saved_model', 'tflite']",
}


def _runner():
    spec = importlib.util.spec_from_file_location("execute_notebooks", NOTEBOOK_DIR / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks_and_each_has_quick_settings():
    assert {p.stem for p in NOTEBOOKS} == set(QUICK)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    notebook = _runner().run_notebook(path, tmp_path, parameters=QUICK[path.stem])
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert notebook.cells[2].metadata["tags"] == ["injected-parameters"]  # right after the settings


def test_overriding_a_notebook_without_a_parameters_cell_is_refused(tmp_path):
    import nbformat

    path = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        _runner().run_notebook(path, tmp_path, parameters="x = 2")
