"""Every benchmark, notebook and Python example imports transfer_tf before TensorFlow or Keras.

`import transfer_tf` turns TensorFlow's oneDNN kernels on where the CPU calls
for it (AVX2 without AVX-512), and can only do so before TensorFlow loads: a
script that imports keras first runs phase 2 up to 2.7x slower there, on
any machine but this one. So the check does not look at this machine's
oneDNN state: it runs each file's import statements (in functions too) in
line order, in a fresh process, and stops at the first of `transfer_tf`,
`tensorflow`, `keras` to be imported (directly or by another module), which
must be `transfer_tf`; then it does the same for each function of a script,
with the module's imports before the function's own (a worker function that
imports keras first is a trap even when a helper above it imports
transfer_tf).
"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WATCHED = ("transfer_tf", "tensorflow", "keras")

PROBE = r"""
import json, sys

class FirstImport(Exception):
    pass

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in %(watched)r:
            raise FirstImport(name.split(".")[0])
        return None

results = {}
for name, folder, imports in json.loads(sys.stdin.read()):
    before = set(sys.modules)
    sys.path.insert(0, folder)
    sys.meta_path.insert(0, Watch())
    results[name] = None
    try:
        for statement in imports:
            try:
                exec(statement, {"__name__": "probe"})
            except FirstImport:
                raise
            except ImportError:  # an optional package missing here, such as mediapipe
                pass
    except FirstImport as first:
        results[name] = str(first)
    finally:
        sys.meta_path.pop(0)
        sys.path.pop(0)
        for module in set(sys.modules) - before:  # the next file imports its own helpers afresh
            if (getattr(sys.modules[module], "__file__", None) or "").startswith(folder + "/"):
                del sys.modules[module]
print(json.dumps(results))
""" % {"watched": WATCHED}


def _imports(source):
    """Every import statement of Python source, module-level or inside a function, in line order.

    Stricter than the order they run in, and as simple to satisfy: import transfer_tf at the top.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a notebook cell with shell magic, or a fragment
        return []
    return _in_line_order(ast.walk(tree))


def _function_imports(source):
    """`{"name:line": imports}` per function: what runs before its body is done, in line order.

    The module's own imports run first, then the function's (nested ones included). A
    function that imports keras before transfer_tf is a trap whatever the file's line order
    says: a helper defined above it may import transfer_tf, yet run only later.
    """
    tree = ast.parse(source)
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(child) for function in functions for child in ast.walk(function)}
    module = _in_line_order(node for node in ast.walk(tree) if id(node) not in inside)
    return {f"{function.name}:{function.lineno}": module + _in_line_order(ast.walk(function))
            for function in functions}


def _in_line_order(nodes):
    nodes = sorted((node for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
                    and not (isinstance(node, ast.ImportFrom) and node.level)), key=lambda node: node.lineno)
    return [ast.unparse(node) for node in nodes]


def _files():
    """`(name, folder, imports)` of every benchmark, notebook, test helper and Python example of the docs."""
    scripts = sorted([*(ROOT / "benchmarks").glob("*.py"), ROOT / "notebooks" / "execute.py",
                      ROOT / "tests" / "conftest.py", ROOT / "tests" / "distribute_job.py"])
    files = [(str(p.relative_to(ROOT)), str(p.parent), _imports(p.read_text())) for p in scripts]
    files += [(f"{p.relative_to(ROOT)}::{function}", str(p.parent), imports) for p in scripts
              for function, imports in _function_imports(p.read_text()).items()]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        imports = [line for cell in cells if cell["cell_type"] == "code" for line in _imports("".join(cell["source"]))]
        files.append((str(notebook.relative_to(ROOT)), str(notebook.parent), imports))
    for page in sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]):
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)):
            imports = _imports(block)
            if imports:
                files.append((f"{page.relative_to(ROOT)} block {i + 1}", str(ROOT), imports))
    return files


@pytest.fixture(scope="module")
def first_imports():
    files = _files()
    completed = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps(files), capture_output=True,
                               text=True, timeout=120, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


def test_every_file_imports_transfer_tf_before_tensorflow_and_keras(first_imports):
    assert len(first_imports) >= 20  # the benchmarks, the notebooks and the examples were all found
    wrong = {name: first for name, first in first_imports.items() if first not in (None, "transfer_tf")}
    assert not wrong, f"these import {', '.join(WATCHED[1:])} before transfer_tf: {wrong}"


def test_the_probe_catches_keras_imported_first(tmp_path):
    script = tmp_path / "keras_first.py"
    script.write_text("import numpy as np\n\ndef run():\n    import keras\n    import transfer_tf as ttf\n")
    files = [("keras_first", str(tmp_path), _imports(script.read_text()))]
    completed = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps(files), capture_output=True,
                               text=True, timeout=120)
    assert json.loads(completed.stdout) == {"keras_first": "keras"}


def test_a_function_that_imports_keras_first_is_caught_below_a_helper_that_imports_transfer_tf(tmp_path):
    source = ("import numpy as np\n\ndef helper():\n    import transfer_tf\n\n"
              "def run():\n    import keras\n    helper()\n")
    assert _imports(source)[1] == "import transfer_tf"  # the file's line order alone passes it
    files = [(f"script::{name}", str(tmp_path), imports) for name, imports in _function_imports(source).items()]
    completed = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps(files), capture_output=True,
                               text=True, timeout=120)
    assert json.loads(completed.stdout) == {"script::helper:3": "transfer_tf", "script::run:6": "keras"}
