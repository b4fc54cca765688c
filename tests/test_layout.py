"""The package's folders are its layers: imports run one way, and no module or function outgrows its job."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "transfer_tf"

# Bottom to top. A module may import its own layer and the layers before it, never a later one.
LAYERS = ["core", "backbones", "data", "model", "training", "methods", "auditing", "evaluation", "exporting", "cli"]
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 80  # the body, after the docstring


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts).removesuffix(".__init__"), path


def _imports(path):
    """Every `transfer_tf` module `path` imports, at the top or inside a function, with its line."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transfer_tf"):
            yield node.module, node.lineno
            yield from ((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names if a.name.startswith("transfer_tf"))


def _layer(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_sits_in_a_layer():
    loose = [m for m, path in _modules() if m != "transfer_tf" and _layer(m) is None]
    assert not loose, f"modules outside the layer folders {LAYERS}: {loose}"


def test_imports_run_one_way():
    upward = []
    for module, path in _modules():
        if module == "transfer_tf":
            continue
        rank = LAYERS.index(_layer(module))
        for imported, line in _imports(path):
            layer = _layer(imported)
            if layer is not None and LAYERS.index(layer) > rank:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(upward)


def test_no_import_cycles_between_modules():
    known = {m for m, _ in _modules()}
    graph = {}
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        top = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
        deps = set()
        for node in top.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transfer_tf"):
                deps.update({node.module} | {f"{node.module}.{a.name}" for a in node.names})
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        # A package's `__init__` runs before its modules, so only modules count as edges.
        graph[module] = {d for d in deps & known if d not in (module, "transfer_tf") and not _is_package(d)}

    def reaches(start, goal, seen):
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph[start])

    assert not [m for m in graph if reaches(m, m, frozenset())]


def _is_package(module):
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").is_file()


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_says_what_it_holds_and_may_import(layer):
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
    assert doc and "Imports:" in doc, f"transfer_tf/{layer}/__init__.py needs a docstring ending in 'Imports: ...'"


def test_modules_and_functions_stay_small():
    too_long = []
    for module, path in _modules():
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                length = body[-1].end_lineno - body[0].lineno + 1 if body else 0
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)
