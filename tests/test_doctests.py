"""The examples in the pure modules' docstrings run and give what they say."""

import doctest

import pytest

import lightning_rectlaw.law
import lightning_rectlaw.metrics
import lightning_rectlaw.pooled
import lightning_rectlaw.table


@pytest.mark.parametrize(
    "module",
    [lightning_rectlaw.law, lightning_rectlaw.metrics, lightning_rectlaw.pooled, lightning_rectlaw.table],
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
