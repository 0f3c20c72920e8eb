"""The house's layering: the pure-math core imports no framework, and nothing imports upward."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_rectlaw"
CORE = (
    "law",
    "selection",
    "pooled",
    "predictive",
    "robust",
    "table",
    "budget",
    "metrics",
    "evaluate",
    "curve",
    "files",
    "result",
    "formatting",
    "display",
    "adaptive",
)
# Presentation a core object may reach lazily, from inside a method (``Selection.plot()``):
# importing the core still imports no framework.
LAZY_OK = ("plot",)
HEAVY = ("torch", "lightning", "hydra", "omegaconf", "transformers", "matplotlib", "tensorboard")


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    lazy = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
    }
    names = set()
    for node in ast.walk(tree):  # module level and inside functions alike
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            inner = base.lstrip(".").removeprefix("lightning_rectlaw.")
            if id(node) in lazy and node.level and inner in LAZY_OK:
                continue  # a method drawing a figure
            names.add(base)
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_framework_and_nothing_above_the_core(module):
    for name in _imports(module):
        top = name.lstrip(".").split(".")[0]
        assert top not in HEAVY, f"{module}.py imports {name}"
        inner = name.split(".", 1)[1] if name.startswith("lightning_rectlaw.") else name.lstrip(".")
        if name.startswith(("lightning_rectlaw.", ".")) and inner:
            assert inner.split(".")[0] in CORE, f"{module}.py imports {name}, above the core"
