"""The examples in the pure modules' docstrings run and give what they say."""

import doctest

import pytest

import lightning_rectlaw.core.law
import lightning_rectlaw.core.metrics
import lightning_rectlaw.core.pooled
import lightning_rectlaw.core.predictive
import lightning_rectlaw.core.presentation.formatting
import lightning_rectlaw.core.screening
import lightning_rectlaw.core.table

MODULES = [
    lightning_rectlaw.core.presentation.formatting,
    lightning_rectlaw.core.law,
    lightning_rectlaw.core.metrics,
    lightning_rectlaw.core.pooled,
    lightning_rectlaw.core.predictive,
    lightning_rectlaw.core.screening,
    lightning_rectlaw.core.table,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no docstring example"
    assert result.failed == 0
