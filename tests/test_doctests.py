"""The examples in the pure modules' docstrings run and give what they say."""

import doctest

import pytest

import lightning_rectlaw.formatting
import lightning_rectlaw.law
import lightning_rectlaw.metrics
import lightning_rectlaw.pooled
import lightning_rectlaw.predictive
import lightning_rectlaw.robust
import lightning_rectlaw.table

MODULES = [
    lightning_rectlaw.formatting,
    lightning_rectlaw.law,
    lightning_rectlaw.metrics,
    lightning_rectlaw.pooled,
    lightning_rectlaw.predictive,
    lightning_rectlaw.robust,
    lightning_rectlaw.table,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no docstring example"
    assert result.failed == 0
