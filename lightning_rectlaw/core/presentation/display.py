"""Rows of records for people: terminal tables, CSV and JSON (the command line's), short HTML
tables for notebooks and DataFrames (pandas optional).

Pure python: pandas is imported only by :func:`to_pandas`, and only when called."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from lightning_rectlaw.core.presentation.formatting import format_number


def to_pandas(rows: Sequence[Mapping[str, Any]], index: str | None = None):
    """``rows`` as a ``pandas.DataFrame`` (one row per record, columns in first-seen order).

    Raises:
        ImportError: pandas is not installed (the message says how to install it)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install pandas") from None
    frame = pd.DataFrame.from_records(list(rows))
    return frame.set_index(index) if index is not None and index in frame else frame


def html_table(
    rows: Sequence[Mapping[str, Any]], caption: str = "", max_rows: int = 20, digits: int = 4
) -> str:
    """A small HTML table of ``rows`` (the first ``max_rows``; a last line says how many more)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(str(c))}</th>" for c in cols)
    body = [
        "<tr>" + "".join(f"<td>{escape(_text(r.get(c), digits, '–'))}</td>" for c in cols) + "</tr>"
        for r in rows[:max_rows]
    ]
    if len(rows) > max_rows:
        body.append(f'<tr><td colspan="{len(cols)}">… {len(rows) - max_rows} more</td></tr>')
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class RowsView:
    """The views people read of an object with ``rows()`` (one record per candidate, with its
    ``name``) and a one-line ``_headline()``: its repr, a DataFrame and a notebook table. A
    dataclass that uses it is declared with ``repr=False``, so that its own repr is not generated."""

    def to_pandas(self):
        """:meth:`rows` as a ``pandas.DataFrame`` indexed by name (needs pandas)."""
        return to_pandas(self.rows(), index="name")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._headline()})"

    def _repr_html_(self) -> str:
        return html_table(self.rows(), caption=f"{type(self).__name__}: {self._headline()}")


def print_rows(rows: list[dict[str, Any]], fmt: str, digits: int = 4) -> None:
    """Print ``rows`` to stdout as JSON, CSV or a terminal table (``fmt``: ``json``, ``csv``,
    ``table``; numbers right-aligned to ``digits`` decimals, missing values as ``-``)."""
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        return
    cols = list(rows[0])
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})
        return
    text = [[_text(r.get(c), digits) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[j]) for t in text)) for j, c in enumerate(cols)]
    numeric = [all(_is_num(r.get(c)) for r in rows) for c in cols]
    fmt_row = lambda cells: "  ".join(  # noqa: E731
        s.rjust(w) if num else s.ljust(w) for s, w, num in zip(cells, widths, numeric)
    ).rstrip()
    print(fmt_row(cols))
    print(fmt_row(["-" * w for w in widths]))
    for t in text:
        print(fmt_row(t))


def _text(v: Any, digits: int, missing: str = "-") -> str:
    return format_number(v, digits, missing=missing) if _is_num(v) else str(v)


def _is_num(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
