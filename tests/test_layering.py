"""The house: layers import only downward, no module imports itself round a cycle, and the math
imports no framework. Imports inside functions and under ``TYPE_CHECKING`` count everywhere.

The layers and the framework ban are import-linter contracts in ``pyproject.toml``
(``[tool.importlinter]``); the cycle check is our own, since a cycle inside one layer breaks no
layer contract.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lightning_rectlaw"
HEAVY = ("torch", "lightning", "hydra", "omegaconf", "transformers", "tensorboard", "torchmetrics")


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its source (a package's
    ``__init__`` is the package's name; ``from pkg import name`` counts for ``pkg.name`` when that
    is a module, else for ``pkg``)."""
    base = package.parent
    modules = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(base).with_suffix("").parts)
        is_init = path.name == "__init__.py"
        modules[name.removesuffix(".__init__") if is_init else name] = (path, is_init)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, (path, is_init) in modules.items():
        here = name if is_init else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                parent = here.split(".")[: len(here.split(".")) - node.level + 1] if node.level else []
                mod = (
                    ".".join([*parent, node.module] if node.module else parent) if node.level else node.module
                )
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph(PACKAGE)) == []


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("from pkg.low.b import f\n")
    (pkg / "low" / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.low.a\n")
    assert cycles(import_graph(pkg)) == [["pkg.low.a", "pkg.low.b"]]


@pytest.mark.slow
def test_layers_import_only_downward_and_the_math_imports_no_framework():
    pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize("layer", ["core", "selection", "schedule"])
def test_presentation_libraries_are_imported_only_inside_functions(layer):
    """pandas and Matplotlib only when a figure or a DataFrame is asked for: importing the
    library for offline use stays light."""
    for path in (PACKAGE / layer).rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module level only
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top not in (*HEAVY, "matplotlib", "pandas"), f"{path.name} imports {name} at import"
