"""The public surface: the names ``lightning_rectlaw`` loads lazily are the classes type checkers
see, and the public constructors take keyword-only arguments after the first."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import lightning_rectlaw
from lightning_rectlaw.core.law import FitResult
from lightning_rectlaw.selection import CandidateScore, CurvePrediction, Method, RectifiedLawResult, Selection


def test_every_lazy_name_is_imported_for_type_checkers():
    tree = ast.parse(Path(lightning_rectlaw.__file__).read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    seen = {a.name: node.module for node in block.body for a in node.names}
    assert seen == lightning_rectlaw._LAZY
    assert set(seen) <= set(lightning_rectlaw.__all__)
    for name, module in seen.items():
        assert getattr(lightning_rectlaw, name) is getattr(importlib.import_module(module), name)


#: Arguments that may be given by position: one, but a table's data (names, sizes, losses) and
#: none of a result record's (every field has a default).
POSITIONAL = {"LossTable": 3, "RectifiedLawResult": 0}
CONSTRUCTORS = [
    "RectifiedLawCallback",
    "NestedSubsetDataModule",
    "AdaptiveSweep",
    "LossTable",
    Selection,
    CandidateScore,
    CurvePrediction,
    RectifiedLawResult,
    Method,
    FitResult,
]


@pytest.mark.parametrize("cls", CONSTRUCTORS, ids=lambda c: c if isinstance(c, str) else c.__name__)
def test_public_constructors_take_keywords_after_the_first(cls):
    cls = getattr(lightning_rectlaw, cls) if isinstance(cls, str) else cls
    by_position = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p.name for p in inspect.signature(cls).parameters.values() if p.kind in by_position]
    assert len(positional) == POSITIONAL.get(cls.__name__, 1), positional
