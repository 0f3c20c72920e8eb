"""What a selector returns: each candidate's score (``CandidateScore``) and the ranking of a
table (``Selection``), with the rows, reprs and figure people read.

Pure numpy: pandas and Matplotlib only inside the presentation methods."""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

import numpy as np

from lightning_rectlaw.core.presentation.display import RowsView
from lightning_rectlaw.core.presentation.formatting import format_number
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection.status import Status


class Curve(Protocol):
    """What every fitted object of a selection offers (``FitResult``, ``LineFit``,
    ``PooledCurve``, ``PredictiveLine``): the predicted loss at sizes, and a central
    prediction interval at one size, ``(0, inf)`` where none can be given."""

    def predict(self, sizes: Any) -> np.ndarray: ...

    def interval(self, size: float, level: float = 0.95) -> tuple[float, float]: ...


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's outcome under a selector.

    Attributes:
        name: the candidate.
        score: lower is better; ``nan`` when the candidate is unrankable.
        predicted_loss: predicted test loss at the target size (methods that predict one).
        interval: ``(low, high)`` prediction interval of ``predicted_loss`` where available.
        sizes_used: subset sizes whose losses the score used (0 = the zero-shot point).
        fit: the fitted law, line or curve, where the method fits one.
        reason: why the candidate is unrankable (``None`` when it is ranked).
        prob_best: probability that this candidate has the lowest target loss (methods with a
            joint predictive distribution: ``pooled``).
        sizes_run: subset sizes that must be fine-tuned to reach this decision (defaults to
            ``sizes_used`` without the zero-shot point; AtS adds the point that stopped it).
        outliers: runs left out as diverged or off the curve, size → why (``robust_ats``)."""

    name: str
    _: KW_ONLY
    score: float
    predicted_loss: float | None = None
    interval: tuple[float, float] | None = None
    sizes_used: tuple[float, ...] = ()
    fit: Curve | None = field(default=None, repr=False)
    reason: str | None = None
    prob_best: float | None = None
    sizes_run: tuple[float, ...] | None = None
    outliers: dict[float, str] = field(default_factory=dict)

    @classmethod
    def predicted(cls, name: str, fit: Curve, target: float, level: float, **fields: Any) -> CandidateScore:
        """``name`` scored by ``fit``'s prediction at ``target``, with its ``level`` interval."""
        pred = float(np.ravel(fit.predict(target))[0])
        lo, hi = fit.interval(target, level)
        return cls(name, score=pred, predicted_loss=pred, interval=(float(lo), float(hi)), fit=fit, **fields)

    @property
    def rankable(self) -> bool:
        return self.reason is None

    @property
    def examples(self) -> float:
        """Fine-tuning examples the decision needed (one pass over each subset run)."""
        run = self.sizes_run if self.sizes_run is not None else self.sizes_used
        return float(sum(s for s in run if s > 0))


@dataclass(frozen=True, repr=False)
class Selection(RowsView):
    """The result of a selector on a table: ranked candidates then unrankable ones."""

    method: str
    _: KW_ONLY
    budget: float
    target: float
    candidates: tuple[CandidateScore, ...]
    interval_level: float = 0.95
    #: The table it ranked (what :meth:`plot` draws the measured points from).
    table: LossTable | None = field(default=None, repr=False, compare=False)

    @property
    def ranking(self) -> tuple[str, ...]:
        """Rankable candidates, best (lowest score) first."""
        return tuple(c.name for c in self.candidates if c.rankable)

    @property
    def best(self) -> str:
        if not self.ranking:
            raise ValueError(
                f"no candidate is rankable under {self.method!r}: "
                + "; ".join(f"{c.name}: {c.reason}" for c in self.candidates)
            )
        return self.ranking[0]

    @property
    def unrankable(self) -> dict[str, str]:
        return {c.name: c.reason for c in self.candidates if c.reason is not None}

    @property
    def prob_best(self) -> dict[str, float] | None:
        """Each rankable candidate's probability of being the best, where the method has one."""
        if not self.candidates or self.candidates[0].prob_best is None:
            return None
        return {c.name: c.prob_best for c in self.candidates if c.rankable}

    @property
    def outliers(self) -> dict[str, dict[float, str]]:
        """Runs left out per candidate (only candidates with any), size → why."""
        return {c.name: c.outliers for c in self.candidates if c.outliers}

    @property
    def examples(self) -> float:
        """Fine-tuning examples all candidates' decisions needed together."""
        return sum(c.examples for c in self.candidates)

    def scores_for(self, names: tuple[str, ...]) -> np.ndarray:
        """Scores aligned with ``names`` (``nan`` for unrankable)."""
        by_name = {c.name: c.score for c in self.candidates}
        return np.array([by_name[n] for n in names], dtype=float)

    def rows(self) -> list[dict[str, Any]]:
        """One record per candidate in rank order (unrankable last): what ``rectlaw select``
        prints. ``prob_best`` and ``left_out`` appear where the method has them."""
        with_prob = self.prob_best is not None
        with_outliers = any(c.outliers for c in self.candidates)
        out = []
        for rank, c in enumerate(self.candidates, start=1):
            lo, hi = c.interval if c.interval is not None else (None, None)
            row: dict[str, Any] = {
                "rank": rank if c.rankable else None,
                "name": c.name,
                "score": None if math.isnan(c.score) else c.score,
                "predicted_loss": c.predicted_loss,
                "interval_low": lo,
                "interval_high": hi,
            }
            if with_prob:
                row["prob_best"] = c.prob_best
            row["points_used"] = len(c.sizes_used)
            if with_outliers:
                row["left_out"] = "; ".join(f"{k:g}: {v}" for k, v in c.outliers.items())
            row["status"] = Status.OK if c.rankable else Status.UNRANKABLE.because(c.reason)
            out.append(row)
        return out

    def _headline(self) -> str:
        n_ok = sum(c.rankable for c in self.candidates)
        best = f"best={self.ranking[0]!r}, " if self.ranking else ""
        unrankable = f", {len(self.candidates) - n_ok} unrankable" if n_ok < len(self.candidates) else ""
        return (
            f"{self.method}, budget={format_number(self.budget)}, target={format_number(self.target)}: "
            f"{best}{n_ok} ranked{unrankable}"
        )

    def plot(self, top: int | None = 10, ax=None):
        """The ``top`` ranked candidates' points, each method's curve and its prediction with
        interval, into the Matplotlib ``ax`` when given; returns the ``Figure`` (a new one is not
        attached to pyplot, and shows inline in notebooks)."""
        from lightning_rectlaw.core.presentation.figures import curve_figure

        shown = [c for c in self.candidates if c.rankable][: top or None]
        curves = {}
        for c in shown:
            sizes, losses = self._points(c)
            curves[c.name] = {
                "sizes": sizes,
                "losses": losses,
                "target_size": self.target,
                "predicted_loss": c.predicted_loss,
                "interval": c.interval,
                "prediction_curve": prediction_curve(c.fit, c.sizes_used, self.target),
                "outliers": {str(int(k)): v for k, v in c.outliers.items()},
                "method": self.method,
            }
        title = f"{self.method} at budget {self.budget:g}: top {len(shown)}"
        return curve_figure(curves, title=title, ax=ax)

    def _points(self, c: CandidateScore) -> tuple[list[float], list[float]]:
        """The losses ``c``'s decision read (those left out too), from the table (none without)."""
        if self.table is None:
            return [], []
        read = c.sizes_run if c.sizes_run is not None else c.sizes_used
        row = self.table.losses[self.table.names.index(c.name)]
        keep = np.isin(self.table.sizes, [s for s in read if s > 0]) & np.isfinite(row)
        return self.table.sizes[keep].tolist(), row[keep].tolist()


def prediction_curve(fit: Any, sizes_used, target: float, points: int = 48) -> dict[str, list[float]] | None:
    """The fit's predicted loss on a log grid from its smallest used size to ``target``."""
    if fit is None or not hasattr(fit, "predict"):
        return None
    used = [s for s in sizes_used if s > 0]
    start = min(used) if used else target
    grid = np.geomspace(start, target, points) if start < target else np.array([target])
    grid[-1] = target  # exactly, so the prediction is the curve's last point
    return {"sizes": grid.tolist(), "losses": np.asarray(fit.predict(grid), dtype=float).ravel().tolist()}


def bounded(interval: tuple[float, float] | None) -> tuple[float, float] | None:
    """``interval`` when both its ends are finite; ``None`` for a missing or unbounded one."""
    return interval if interval is not None and all(map(math.isfinite, interval)) else None


def in_budget(table: LossTable, budget: float) -> tuple[np.ndarray, np.ndarray]:
    """The table's sizes within ``budget`` and every candidate's losses at them."""
    keep = table.sizes <= budget * (1 + 1e-9)
    return table.sizes[keep], table.losses[:, keep]
