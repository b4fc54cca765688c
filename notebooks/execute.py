"""Runs the tutorials from top to bottom: in place, to refresh the outputs the docs show, or quickly.

    python notebooks/execute.py            # every notebook, its outputs saved (a few minutes)
    python notebooks/execute.py 01_quickstart

Each notebook keeps its settings in one cell tagged `parameters` (image
size, images, epochs). `tests/test_notebooks.py` runs every notebook with
smaller settings put in a cell right after that one, as papermill would.
"""

import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent


def run_notebook(path, workdir, *, parameters=None, timeout=900):
    """Executes a notebook in `workdir`; returns it with its outputs.

    Args:
        path: path of the `.ipynb` file.
        workdir: folder the notebook runs in (the files it writes go there).
        parameters: str or `None`. Python run right after the cell tagged
            `parameters`, to override its settings. Defaults to `None`.
        timeout: int. Seconds any one cell may take. Defaults to `900`.

    Returns:
        The executed `nbformat` notebook.

    Raises:
        ValueError: if `parameters` is given and no cell is tagged `parameters`.
        nbclient.exceptions.CellExecutionError: naming the cell, if a cell fails.
    """
    notebook = nbformat.read(path, as_version=4)
    if parameters is not None:
        tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
        if not tagged:
            raise ValueError(f"{path} has no cell tagged 'parameters' to override. Received: parameters={parameters!r}")
        injected = nbformat.v4.new_code_cell(parameters)
        injected.metadata["tags"] = ["injected-parameters"]
        notebook.cells.insert(tagged[0] + 1, injected)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def main(names):
    paths = [NOTEBOOKS / f"{name.removesuffix('.ipynb')}.ipynb" for name in names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        print(f"Running {path.name} ...", flush=True)
        with tempfile.TemporaryDirectory() as workdir:
            nbformat.write(run_notebook(path, workdir), path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
