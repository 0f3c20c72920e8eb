"""One number formatter for everything the tool writes: CSV cells, terminal tables, summaries."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def format_number(value: Any, digits: int | None = None, missing: str = "") -> str:
    """Format a number for a file or for people.

    Args:
        value: a number (or ``None``).
        digits: ``None`` for an exact, round-trippable form (CSV cells: an integral value
            without a decimal point, other floats by ``repr``); else that many decimals, in
            scientific notation when the magnitude is 1e6 or more, or below 1e-3.
        missing: the text for ``None`` (and for ``nan`` in the exact form).

    Example:
        >>> [format_number(v) for v in (200.0, 2.5, float("nan"))]
        ['200', '2.5', '']
        >>> [format_number(v, 3, missing="-") for v in (1.74399, 1234567.0, None, float("inf"))]
        ['1.744', '1.235e+06', '-', 'inf']
    """
    if value is None:
        return missing
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if math.isnan(v):
        return missing if digits is None else "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if digits is None:
        return str(int(v)) if v.is_integer() else repr(v)
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.{digits}e}"
    return f"{v:.{digits}f}"
