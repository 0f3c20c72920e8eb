"""`LossTable`: test losses of candidate models fine-tuned on nested subsets, in the paper's CSV format.

The format (one row per candidate)::

    config name,0,200,400,...,1638400,size,family
    gpt2,4.61,3.92,3.87,...,1.81,124439808,GPT2

Column ``0`` is the zero-shot loss, numeric columns are subset sizes, ``size`` the parameter
count and ``family`` the model family; all but the name and at least one size are optional.
An empty (or ``nan``) cell is a missing run; any other non-number is an error.

Example:
    >>> text = "config name,0,200,400,800\\na,4.0,3.1,,2.8\\nb,5.0,3.5,3.2,3.0\\n"
    >>> table = LossTable.from_csv_text(text)
    >>> table.names, table.sizes.tolist(), table.resolve_budget("1/2")
    (('a', 'b'), [200.0, 400.0, 800.0], 400.0)
    >>> table.column(400).tolist()  # a's run at 400 is missing
    [nan, 3.2]
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightning_rectlaw.core.budget import TableError, budget_size
from lightning_rectlaw.core.files import atomic_write_text
from lightning_rectlaw.core.presentation.display import RowsView
from lightning_rectlaw.core.presentation.formatting import format_number

NAME_COLUMN = "config name"
_MISSING = {"", "nan", "na", "none"}


@dataclass(frozen=True, repr=False)
class LossTable(RowsView):
    """Test losses of candidates (rows) at nested fine-tuning subset sizes (columns).

    Attributes:
        names: candidate names (e.g. Hugging Face ids), unique.
        sizes: subset sizes, strictly increasing, all positive.
        losses: ``(n_candidates, n_sizes)`` test losses; ``NaN`` marks a missing run.
        zero_shot: ``(n_candidates,)`` loss without fine-tuning (``NaN`` where unknown), or ``None``.
        num_params: ``(n_candidates,)`` parameter counts (``NaN`` where unknown), or ``None``.
        families: model family per candidate, or ``None``."""

    names: tuple[str, ...]
    sizes: np.ndarray
    losses: np.ndarray
    _: KW_ONLY
    zero_shot: np.ndarray | None = None
    num_params: np.ndarray | None = None
    families: tuple[str, ...] | None = None
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self) -> None:
        sizes = np.asarray(self.sizes, dtype=float)
        losses = np.atleast_2d(np.asarray(self.losses, dtype=float))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "losses", losses)
        n = len(self.names)
        if losses.shape != (n, sizes.size):
            raise TableError(
                f"`losses` must have shape (candidates, sizes) = ({n}, {sizes.size}), got {losses.shape}"
            )
        if len(set(self.names)) != n:
            dup = sorted({x for x in self.names if self.names.count(x) > 1})
            raise TableError(f"candidate names must be unique, repeated: {dup}")
        if sizes.size == 0:
            raise TableError("a loss table needs at least one subset-size column")
        if np.any(~np.isfinite(sizes)) or np.any(sizes <= 0):
            raise TableError(
                f"subset sizes must be positive, got {sizes.tolist()} "
                "(the zero-shot loss goes in `zero_shot`, column '0')"
            )
        if np.any(np.diff(sizes) <= 0):
            raise TableError(f"subset sizes must be distinct and increasing, got {sizes.tolist()}")
        for attr in ("zero_shot", "num_params"):
            col = getattr(self, attr)
            if col is not None:
                col = np.asarray(col, dtype=float).ravel()
                if col.size != n:
                    raise TableError(f"`{attr}` needs one value per candidate ({n}), got {col.size}")
                object.__setattr__(self, attr, col)
        if self.families is not None:
            object.__setattr__(self, "families", tuple(str(f) for f in self.families))
        for i, name in enumerate(self.names):
            row = np.concatenate([losses[i], [] if self.zero_shot is None else [self.zero_shot[i]]])
            bad = row[~np.isnan(row)]
            if np.any(~np.isfinite(bad)) or np.any(bad <= 0):
                raise TableError(
                    f"losses must be finite and positive, candidate {name!r} has "
                    f"{bad[~np.isfinite(bad) | (bad <= 0)].tolist()}; leave a failed "
                    "run's cell empty instead"
                )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def max_size(self) -> float:
        return float(self.sizes[-1])

    def column(self, size: float) -> np.ndarray:
        """Losses of every candidate at subset ``size`` (must be a column of the table)."""
        idx = np.flatnonzero(self.sizes == size)
        if idx.size == 0:
            raise TableError(
                f"size {format_number(size)} is not a column of {self.source}; "
                f"available sizes: {[format_number(s) for s in self.sizes]}"
            )
        return self.losses[:, idx[0]]

    def resolve_budget(self, budget: float | str, target: float | None = None) -> float:
        """Turn a budget into a size (:func:`~lightning_rectlaw.core.budget.budget_size`). A ratio is taken
        relative to ``target`` (default: the largest size). The budget must lie between the smallest and the
        largest subset size of the table."""
        target = self.max_size if target is None else float(target)
        size = budget_size(budget, target)
        if size > self.max_size * (1 + 1e-9):
            raise TableError(
                f"budget {budget!r} ({format_number(size)} examples) is larger than the "
                f"largest subset in {self.source} ({format_number(self.max_size)}); "
                "use a smaller budget or add the larger runs"
            )
        if size < self.sizes[0] * (1 - 1e-9):
            raise TableError(
                f"budget {budget!r} ({format_number(size)} examples) is smaller than the "
                f"smallest subset in {self.source} ({format_number(self.sizes[0])}); "
                "use a larger budget"
            )
        return size

    def subset(self, names: Sequence[str]) -> LossTable:
        """The rows for ``names``, in that order."""
        idx = [self.names.index(n) for n in names]
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        fam = None if self.families is None else tuple(self.families[i] for i in idx)
        return LossTable(
            tuple(names),
            self.sizes,
            self.losses[idx],
            zero_shot=pick(self.zero_shot),
            num_params=pick(self.num_params),
            families=fam,
            source=self.source,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One record per candidate: ``name``, the zero-shot loss (``0``) where known, a loss per
        size (``nan`` = missing run), ``size`` (parameters) and ``family`` where known."""
        out = []
        for i, name in enumerate(self.names):
            row: dict[str, Any] = {"name": name}
            if self.zero_shot is not None:
                row[0] = float(self.zero_shot[i])
            row.update({_size_key(s): float(v) for s, v in zip(self.sizes, self.losses[i])})
            if self.num_params is not None:
                row["size"] = float(self.num_params[i])
            if self.families is not None:
                row["family"] = self.families[i]
            out.append(row)
        return out

    @classmethod
    def from_pandas(cls, frame, source: str = "<DataFrame>") -> LossTable:
        """A table from a ``pandas.DataFrame`` laid out as :meth:`to_pandas` and the CSV (module docstring),
        named by its index or a ``name``/``config name`` column; checked as a CSV file is."""
        if named := [c for c in (NAME_COLUMN, "name") if c in frame.columns]:
            frame = frame.set_index(named[0])
        text = frame.to_csv(index=True, index_label=NAME_COLUMN, na_rep="")
        return cls.from_csv_text(text, source=source)

    def _headline(self) -> str:
        cols = {"zero-shot": self.zero_shot, "parameter counts": self.num_params, "families": self.families}
        extras = [label for label, col in cols.items() if col is not None]
        span = f"{format_number(self.sizes[0])}..{format_number(self.sizes[-1])}"
        more = f", with {', '.join(extras)}" if extras else ""
        return f"{len(self.names)} candidates x {self.sizes.size} sizes {span}{more}, source={self.source!r}"

    def plot(self, names: Sequence[str] | None = None, ax=None):
        """Each candidate's measured curve (all of them, or ``names``) on log-log axes, into the
        Matplotlib ``ax`` when given; returns the ``Figure`` (a new one is not attached to pyplot,
        and shows inline in notebooks)."""
        from lightning_rectlaw.core.presentation.figures import table_figure

        return table_figure(self if names is None else self.subset(names), ax=ax)

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> LossTable:
        """Read a table in the paper's CSV format; errors name the row and column."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise TableError(f"cannot read loss table {str(path)!r}: {err.strerror}") from err
        except UnicodeDecodeError:
            raise TableError(
                f"{str(path)!r} is not a text CSV file (it is binary or not UTF-8): give the loss "
                f"table in the paper's format, '{NAME_COLUMN},0,200,...,size,family'"
            ) from None
        if "\x00" in text:
            raise TableError(f"{str(path)!r} is a binary file, not a loss table CSV")
        return cls.from_csv_text(text, source=str(path))

    @classmethod
    def from_csv_text(cls, text: str, source: str = "<text>") -> LossTable:
        """Parse the paper's CSV format. Also read: a semicolon- or tab-separated export (with
        decimal commas under semicolons, as spreadsheets write it in many locales), a byte-order
        mark, and empty trailing columns (a trailing comma on every line)."""
        text = text.removeprefix("\ufeff")
        delimiter = _delimiter(text)
        rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)]
        if not rows:
            raise TableError(
                f"{source} is empty: expected a header row '{NAME_COLUMN},0,200,...,size,family'"
            )
        rows = _without_empty_trailing_columns(rows)
        header = [h.strip() for h in rows[0]]
        if _is_number(header[0]) or header[0] in ("size", "family"):
            raise TableError(
                f"{source}: the first column must hold the candidate names (header "
                f"'{NAME_COLUMN}'), but its header is {header[0]!r}; add the name column first"
            )
        size_cols, zero_col, size_col, fam_col = _columns(header, source)
        if not size_cols:
            raise TableError(f"{source}: the header has no subset-size columns (e.g. 200, 400, ...)")
        size_cols.sort()
        names, losses, zero, params, fams = [], [], [], [], []
        for i, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise TableError(
                    f"{source}, row {i}: {len(row)} cells but the header has "
                    f"{len(header)}; fix the row's commas"
                )
            names.append(row[0].strip())
            cell = functools.partial(
                _cell, row, header=header, i=i, source=source, decimal_comma=delimiter != ","
            )
            losses.append([cell(j) for _, j in size_cols])
            zero.append(cell(zero_col) if zero_col else math.nan)
            params.append(cell(size_col) if size_col else math.nan)
            fams.append(row[fam_col].strip() if fam_col else "")
        if not names:
            raise TableError(f"{source} has a header but no candidate rows")
        return cls(
            names=tuple(names),
            sizes=np.array([v for v, _ in size_cols]),
            losses=np.array(losses, dtype=float).reshape(len(names), len(size_cols)),
            zero_shot=np.array(zero) if zero_col else None,
            num_params=np.array(params) if size_col else None,
            families=tuple(fams) if fam_col else None,
            source=source,
        )

    def to_csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        header = [NAME_COLUMN] + (["0"] if self.zero_shot is not None else [])
        header += [format_number(s) for s in self.sizes]
        header += ["size"] if self.num_params is not None else []
        header += ["family"] if self.families is not None else []
        w.writerow(header)
        w.writerows([v if isinstance(v, str) else format_number(v) for v in r.values()] for r in self.rows())
        return buf.getvalue()

    def write_csv(self, path: str | os.PathLike) -> None:
        """Write the table in the paper's format, atomically (a temp file renamed into place)."""
        atomic_write_text(path, self.to_csv_text())


def _size_key(size: float) -> int | float:
    return int(size) if float(size).is_integer() else float(size)


def _columns(
    header: list[str], source: str
) -> tuple[list[tuple[float, int]], int | None, int | None, int | None]:
    """The header's columns: (size, index) of each subset size, and the indices of the zero-shot
    (``0``), parameter-count (``size``) and ``family`` columns where present."""
    size_cols, zero_col, size_col, fam_col = [], None, None, None
    for j, h in enumerate(header[1:], start=1):
        if h == "size":
            size_col = j
        elif h == "family":
            fam_col = j
        elif not _is_number(h):
            raise TableError(
                f"{source}: header column {j + 1} {h!r} is neither a subset "
                "size, 'size' nor 'family'; rename or remove it"
            )
        elif float(h) == 0:
            zero_col = j
        else:
            size_cols.append((float(h), j))
    return size_cols, zero_col, size_col, fam_col


def _delimiter(text: str) -> str:
    """The separator of the header line: the most frequent of comma, semicolon and tab (a comma
    on a tie, as when the header has one column)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    return max((",", ";", "\t"), key=header.count)


def _without_empty_trailing_columns(rows: list[list[str]]) -> list[list[str]]:
    """Drop trailing columns that are empty in the header and in every row (a trailing comma)."""
    width = max(len(r) for r in rows)
    while width > 1 and all(len(r) < width or not r[width - 1].strip() for r in rows):
        width -= 1
    return [r[:width] for r in rows]


def _cell(
    row: list[str], j: int, header: list[str], i: int, source: str, decimal_comma: bool = False
) -> float:
    text = row[j].strip()
    if text.lower() in _MISSING:
        return math.nan
    # A decimal comma ("4,8913") in a semicolon- or tab-separated spreadsheet export; in a
    # comma-separated file a comma in a number could be a thousands separator: refused.
    number = text.replace(",", ".") if decimal_comma and text.count(",") == 1 and "." not in text else text
    try:
        return float(number)
    except ValueError:
        raise TableError(
            f"{source}, row {i} ({row[0].strip()!r}), column {header[j]!r}: "
            f"{text!r} is not a number; leave the cell empty for a missing run"
        ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
