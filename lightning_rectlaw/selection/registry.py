"""Model selectors: rank candidates by predicted test loss after fine-tuning on the full set.

Every selector reads only the points of a :class:`~lightning_rectlaw.core.table.LossTable` that lie
within the data budget (subset sizes ``<= budget``, plus the zero-shot column where it uses it)
and returns a :class:`Selection`: the ranking, each candidate's score (lower is better; the
predicted target loss where the method predicts one), its interval where it has one, and the
points each prediction used.

Pure numpy/scipy: no torch, Lightning or Hydra import here.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import Any, Protocol

import numpy as np
from scipy.special import stdtrit

from lightning_rectlaw.core.formatting import format_number
from lightning_rectlaw.core.law import DEFAULT_HUBER_DELTA, fit_available, num_params
from lightning_rectlaw.core.pooled import fit_pooled
from lightning_rectlaw.core.predictive import (
    SCHEMES,
    Calibration,
    PredictiveLine,
    backtest_rates,
    calibrate,
    inflate,
    prob_best,
)
from lightning_rectlaw.core.screening import OutlierWarning, Screen, screen_outliers
from lightning_rectlaw.core.table import LossTable

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "Method",
    "CandidateScore",
    "Curve",
    "LineFit",
    "Selection",
    "accept_then_stop",
    "ats_stopped",
    "calibrate_ats",
    "check_option",
    "method_entry",
    "select",
]

DEFAULT_METHOD = "robust_ats"

# How `robust_ats` turns in-budget backtests into intervals and P(best) (`predictive.inflate`):
# backtests see only the early part of a curve and under-estimate far extrapolation errors, so
# a prior error rate widens them. The scheme and whether to centre on the backtests' mean error
# were chosen, and the rates fitted, by benchmarks/heldout.py (nested leave-one-table-out); the
# README reports the held-out figures.
SPREAD: dict[str, Any] = {
    "scheme": "scale",
    "centre": False,
    "tau_all": 1.7681,
    "own_scheme": "prior",
    "tau_own": 0.0306,
}


class Curve(Protocol):
    """What every fitted object of a selection offers (``FitResult``, ``LineFit``,
    ``PooledCurve``, ``PredictiveLine``): the predicted loss at sizes, and a central
    prediction interval at one size, ``(0, inf)`` where none can be given."""

    def predict(self, sizes: Any) -> np.ndarray: ...

    def interval(self, size: float, level: float = 0.95) -> tuple[float, float]: ...


@dataclass(frozen=True)
class LineFit:
    """Least-squares line ``log L = intercept + slope * log D`` (the AtS power-phase fit)."""

    slope: float
    intercept: float
    sizes: np.ndarray = field(repr=False)
    losses: np.ndarray = field(repr=False)
    rmse_log: float

    def predict(self, sizes: Any) -> np.ndarray:
        return np.exp(self.intercept + self.slope * np.log(np.asarray(sizes, dtype=float)))

    def interval(self, size: float, level: float = 0.95) -> tuple[float, float]:
        """Student-t prediction interval of ordinary least squares, in log space, exponentiated.

        Unbounded ``(0, inf)`` with only two points (no residual degrees of freedom).
        """
        x, y = np.log(self.sizes), np.log(self.losses)
        n = x.size
        centre = float(np.log(self.predict(size)))
        if n <= 2:
            return 0.0, float("inf")
        resid = y - (self.intercept + self.slope * x)
        s2 = resid @ resid / (n - 2)
        x0 = np.log(size)
        se = np.sqrt(s2 * (1 + 1 / n + (x0 - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2)))
        half = stdtrit(n - 2, 0.5 + level / 2) * se
        return float(np.exp(centre - half)), float(np.exp(centre + half))


def fit_line(sizes: np.ndarray, losses: np.ndarray) -> LineFit:
    x, y = np.log(sizes), np.log(losses)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    return LineFit(
        float(slope),
        float(intercept),
        np.asarray(sizes, dtype=float),
        np.asarray(losses, dtype=float),
        float(np.sqrt(np.mean(resid**2))),
    )


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
        outliers: runs left out as diverged or off the curve, size → why (``robust_ats``).
    """

    name: str
    score: float
    predicted_loss: float | None = None
    interval: tuple[float, float] | None = None
    sizes_used: tuple[float, ...] = ()
    fit: Curve | None = field(default=None, repr=False)
    reason: str | None = None
    prob_best: float | None = None
    sizes_run: tuple[float, ...] | None = None
    outliers: dict[float, str] = field(default_factory=dict)

    @property
    def rankable(self) -> bool:
        return self.reason is None

    @property
    def examples(self) -> float:
        """Fine-tuning examples the decision needed (one pass over each subset run)."""
        run = self.sizes_run if self.sizes_run is not None else self.sizes_used
        return float(sum(s for s in run if s > 0))


@dataclass(frozen=True)
class Selection:
    """The result of a selector on a table: ranked candidates then unrankable ones."""

    method: str
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

    # --- for people: rows, reprs, DataFrame, figure ---------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """One record per candidate in rank order (unrankable last): what ``rectlaw select``
        prints. ``prob_best`` and ``left_out`` appear where the method has them."""
        with_prob = self.candidates and self.candidates[0].prob_best is not None
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
            row["status"] = "ok" if c.rankable else f"unrankable: {c.reason}"
            out.append(row)
        return out

    def to_pandas(self):
        """:meth:`rows` as a ``pandas.DataFrame`` indexed by name (needs pandas)."""
        from lightning_rectlaw.core.display import to_pandas

        return to_pandas(self.rows(), index="name")

    def _headline(self) -> str:
        n_ok = sum(c.rankable for c in self.candidates)
        best = f"best={self.ranking[0]!r}, " if self.ranking else ""
        unrankable = f", {len(self.candidates) - n_ok} unrankable" if n_ok < len(self.candidates) else ""
        return (
            f"{self.method}, budget={format_number(self.budget)}, target={format_number(self.target)}: "
            f"{best}{n_ok} ranked{unrankable}"
        )

    def __repr__(self) -> str:
        return f"Selection({self._headline()})"

    def _repr_html_(self) -> str:
        from lightning_rectlaw.core.display import html_table

        return html_table(self.rows(), caption=f"Selection: {self._headline()}")

    def plot(self, top: int | None = 10):
        """The ``top`` ranked candidates' points, each method's curve and its prediction with
        interval: a Matplotlib ``Figure``, not attached to pyplot (shows inline in notebooks)."""
        from lightning_rectlaw.core.figures import curve_figure
        from lightning_rectlaw.selection.curve import prediction_curve

        shown = [c for c in self.candidates if c.rankable][: top or None]
        curves = {}
        for c in shown:
            sizes, losses = self._points(c)
            curves[c.name] = {
                "sizes": sizes,
                "losses": losses,
                "target_size": self.target,
                "predicted_loss": c.predicted_loss if c.predicted_loss is not None else None,
                "interval": c.interval,
                "prediction_curve": prediction_curve(c.fit, c.sizes_used, self.target),
                "outliers": {str(int(k)): v for k, v in c.outliers.items()},
                "method": self.method,
            }
        title = f"{self.method} at budget {self.budget:g}: top {len(shown)}"
        return curve_figure(curves, title=title)

    def _points(self, c: CandidateScore) -> tuple[list[float], list[float]]:
        """The losses ``c``'s decision read (those left out too), from the table (none without)."""
        if self.table is None:
            return [], []
        read = c.sizes_run if c.sizes_run is not None else c.sizes_used
        row = self.table.losses[self.table.names.index(c.name)]
        keep = np.isin(self.table.sizes, [s for s in read if s > 0]) & np.isfinite(row)
        return self.table.sizes[keep].tolist(), row[keep].tolist()


# --- the selectors ----------------------------------------------------------------------------

Selector = Callable[..., list[CandidateScore]]


def _in_budget(table: LossTable, budget: float) -> tuple[np.ndarray, np.ndarray]:
    keep = table.sizes <= budget * (1 + 1e-9)
    return table.sizes[keep], table.losses[:, keep]


def accept_then_stop(
    sizes: np.ndarray, losses: np.ndarray, k: int = 3, delta: float = 5.0
) -> tuple[LineFit | None, str | None]:
    """The paper's AtS point selection on one candidate's curve, as its released code runs it.

    Walking down from the largest subset: the ``k`` largest points are accepted; each next
    (smaller) point is tested against the least-squares line, in log-log space, through *all*
    points accepted so far, and accepted while its log-loss lies within ``delta`` standard
    deviations (population std) of that line's residuals. The walk stops at the first point that
    does not, which is left out. The final line is fitted to the accepted points, with one rule
    of the paper's code: when the walk accepts every point down to the smallest without stopping,
    the smallest one is left out of the final line all the same (the code's loop index ends one
    short). With ``k`` points or fewer, all of them are used.

    Missing points (``NaN``) are skipped. Returns the line fit, or ``None`` with the reason
    when fewer than ``k`` points are available.
    """
    ok = np.isfinite(losses)
    s, y = sizes[ok][::-1], losses[ok][::-1]
    if s.size < k:
        return None, f"AtS needs k={k} points within the budget, found {s.size}"
    n, stopped = _ats_walk(s, y, k, delta)
    if not stopped and s.size > k:  # walked to the smallest point: the paper's code drops it
        n = s.size - 1
    return fit_line(s[:n], y[:n]), None


def ats_stopped(sizes: np.ndarray, losses: np.ndarray, k: int = 3, delta: float = 5.0) -> bool:
    """Whether AtS's walk down ``sizes`` stops before the smallest point (a phase transition)."""
    ok = np.isfinite(losses)
    s, y = sizes[ok][::-1], losses[ok][::-1]
    return s.size > k and _ats_walk(s, y, k, delta)[1]


def _ats_walk(s: np.ndarray, y: np.ndarray, k: int, delta: float) -> tuple[int, bool]:
    """Points accepted walking down the descending sizes ``s``, and whether the walk stopped."""
    n = k
    while n < s.size:
        line = fit_line(s[:n], y[:n])
        sigma = np.std(np.log(y[:n]) - np.log(line.predict(s[:n])))
        if abs(np.log(y[n]) - np.log(line.predict(s[n]))) > delta * sigma:
            return n, True
        n += 1
    return n, False


def _ats(table, budget, target, level, k: int = 3, delta: float = 5.0):
    sizes, losses = _in_budget(table, budget)
    out = []
    for name, row in zip(table.names, losses):
        line, reason = accept_then_stop(sizes, row, k=k, delta=delta)
        if line is None:
            out.append(CandidateScore(name, np.nan, reason=reason))
            continue
        pred = float(line.predict(target))
        used = tuple(line.sizes.tolist())
        finite = sizes[np.isfinite(row)][::-1]
        run = used + tuple(finite[len(used) : len(used) + 1].tolist())  # the point that stopped it
        out.append(CandidateScore(name, pred, pred, line.interval(target, level), used, line, sizes_run=run))
    return out


def calibrate_ats(
    sizes: np.ndarray,
    losses: np.ndarray,
    zero_shot: np.ndarray | None = None,
    k: int = 3,
    delta: float = 5.0,
    holdouts: int = 3,
    threshold: float = 8.0,
    floor: float = 0.1,
) -> tuple[Screen, np.ndarray, Calibration]:
    """``robust_ats``'s first two steps on in-budget points: screen out bad runs, then backtest AtS.

    Returns the screen, the losses with the flagged runs missing, and the calibration.
    """
    screen = screen_outliers(sizes, losses, zero_shot, threshold=threshold, floor=floor)
    clean = screen.clean(losses)

    def extrapolate(s, y):
        line, _ = accept_then_stop(s, y, k=k, delta=delta)
        return None if line is None else line.predict

    return screen, clean, calibrate(backtest_rates(sizes, clean, extrapolate, holdouts))


def _robust_ats(
    table,
    budget,
    target,
    level,
    k: int = 3,
    delta: float = 5.0,
    holdouts: int = 3,
    threshold: float = 8.0,
    floor: float = 0.1,
    scheme: str = SPREAD["scheme"],
    centre: bool = SPREAD["centre"],
    tau_all: float = SPREAD["tau_all"],
    own_scheme: str = SPREAD["own_scheme"],
    tau_own: float = SPREAD["tau_own"],
):
    sizes, losses = _in_budget(table, budget)
    screen, clean, cal = calibrate_ats(sizes, losses, table.zero_shot, k, delta, holdouts, threshold, floor)
    spread = inflate(cal.tau_centred if centre else cal.tau_all, tau_all, scheme)
    spread_own = inflate(cal.tau_own, tau_own, own_scheme)
    bias = cal.bias if centre and cal.observations else 0.0
    out, means, spreads = [], [], []
    for i, (name, row) in enumerate(zip(table.names, clean)):
        line, reason = accept_then_stop(sizes, row, k=k, delta=delta)
        left_out = screen.outliers[i]
        if line is None:
            if left_out:
                reason += f" after leaving out {len(left_out)} bad run(s)"
            out.append(CandidateScore(name, np.nan, reason=reason, outliers=left_out))
            means.append(np.nan)
            spreads.append(np.nan)
            continue
        finite = sizes[np.isfinite(row)]
        curve = PredictiveLine(line.predict, float(finite[-1]), float(spread[i]), float(spread_own[i]), bias)
        pred = float(curve.predict(target)[0])
        means.append(np.log(pred))
        spreads.append(spread_own[i] * np.log(target / finite[-1]))
        out.append(
            CandidateScore(
                name,
                pred,
                pred,
                curve.interval(target, level),
                tuple(line.sizes.tolist()),
                curve,
                sizes_run=tuple(float(x) for x in sizes[np.isfinite(losses[i])]),
                outliers=left_out,
            )
        )
    probs = prob_best(np.array(means), np.array(spreads)) if np.isfinite(spreads).any() else None
    if probs is not None:
        out = [c if np.isnan(p) else _replace(c, prob_best=float(p)) for c, p in zip(out, probs)]
    bad = {c.name: c.outliers for c in out if c.outliers}
    if bad:
        listed = "; ".join(
            f"{n}: " + ", ".join(f"{size:g} ({why})" for size, why in o.items()) for n, o in bad.items()
        )
        warnings.warn(f"left out of the ranking as bad runs: {listed}", OutlierWarning, stacklevel=3)
    return out


def _pooled(table, budget, target, level, k: int = 3, holdouts: int = 3, seed: int = 0):
    sizes, losses = _in_budget(table, budget)
    fit = fit_pooled(sizes, losses, k=k, holdouts=holdouts)
    probs = fit.prob_best(target, seed=seed)
    bounded = fit.holdouts > 0
    quant = fit.quantiles(target, (0.5, 0.5 - level / 2, 0.5 + level / 2))
    out = []
    for name, curve, p, (pred, lo, hi) in zip(table.names, fit.curves, probs, quant.tolist()):
        if curve is None:
            out.append(CandidateScore(name, np.nan, reason="`pooled` needs 2 points within the budget"))
            continue
        run = curve.sizes[-(k + fit.holdouts) :]  # the local line plus the backtest's hold-outs
        out.append(
            CandidateScore(
                name,
                pred,
                pred,
                (lo, hi) if bounded else (0.0, float("inf")),
                tuple(curve.sizes[-k:].tolist()),
                curve,
                prob_best=None if np.isnan(p) else float(p),
                sizes_run=tuple(run.tolist()),
            )
        )
    return out


def _subtuning(table, budget, target, level):
    sizes, losses = _in_budget(table, budget)
    size = float(sizes[-1])
    out = []
    for name, loss in zip(table.names, losses[:, -1]):
        if np.isnan(loss):
            out.append(CandidateScore(name, np.nan, reason=f"no loss at the budget size {size:g}"))
        else:
            out.append(CandidateScore(name, float(loss), sizes_used=(size,)))
    return out


def _zeroshot(table, budget, target, level):
    if table.zero_shot is None:
        raise ValueError("`zeroshot` needs the zero-shot column '0' in the table")
    return [
        CandidateScore(name, float(z), sizes_used=(0.0,))
        if np.isfinite(z)
        else CandidateScore(name, np.nan, reason="no zero-shot loss")
        for name, z in zip(table.names, table.zero_shot)
    ]


def _modelsize(table, budget, target, level):
    if table.num_params is None:
        raise ValueError("`modelsize` needs the parameter-count column 'size' in the table")
    return [
        CandidateScore(name, -float(np.log(p)))
        if np.isfinite(p) and p > 0
        else CandidateScore(name, np.nan, reason="no parameter count")
        for name, p in zip(table.names, table.num_params)
    ]


def _lawfit(table, budget, target, level, law: str, with_zero_shot: bool, **fit_kw: Any):
    sizes, losses = _in_budget(table, budget)
    if with_zero_shot and table.zero_shot is not None:
        sizes = np.concatenate([[0.0], sizes])
        losses = np.column_stack([table.zero_shot, losses])
    need = num_params(law, fit_kw.get("free_alpha", False))
    counts = np.isfinite(losses).sum(axis=1)
    out = []
    for i, (name, f) in enumerate(
        zip(table.names, fit_available(sizes, losses, law, names=table.names, **fit_kw))
    ):
        if f is None:
            out.append(
                CandidateScore(
                    name,
                    np.nan,
                    reason=f"the {law} law needs {need} points within the budget, found {counts[i]}",
                )
            )
            continue
        pred = float(f.predict(target))
        lo, hi = f.interval(target, level)
        out.append(CandidateScore(name, pred, pred, (float(lo), float(hi)), tuple(f.sizes.tolist()), f))
    return out


def _law_scorer(law: str, with_zero_shot: bool) -> Selector:
    """A selector that fits ``law`` to each candidate's in-budget points (OurFit, VanillaFit)."""

    def scorer(
        table,
        budget,
        target,
        level,
        free_alpha: bool = False,
        huber_delta: float = DEFAULT_HUBER_DELTA,
        max_iter: int = 1000,
    ):
        fit_kw = {"free_alpha": free_alpha, "huber_delta": huber_delta, "max_iter": max_iter}
        return _lawfit(table, budget, target, level, law, with_zero_shot, **fit_kw)

    return scorer


_ourfit = _law_scorer("rectified", with_zero_shot=True)
_vanillafit = _law_scorer("vanilla", with_zero_shot=False)


@dataclass(frozen=True)
class Method:
    """One selector: the registry entry every entry point (``select``, the CLI, the callback, the
    Hydra app, the zoo script) reads, so a new selector is added here and nowhere else.

    Attributes:
        scorer: ``scorer(table, budget, target, level, **options) -> list[CandidateScore]``; its
            keyword parameters after those four are the method's options, with their defaults.
        label: the name in tables and plots (the paper's, where it has one).
        description: one line for ``rectlaw methods``.
        schedule: the subsets the callback must run for it: ``"all"`` (down to ``min_size``),
            ``"ats"`` (until AtS's walk stops) or ``"pooled"`` (the ``k + holdouts`` largest).
        needs: table columns it cannot do without: ``"zero_shot"`` (column ``0``),
            ``"num_params"`` (column ``size``).
        min_points: in-budget points a candidate needs, given the options.
        zero_shot_point: whether the zero-shot loss counts as one of those points (a law fitted
            through size 0); AtS-based methods use it only to screen diverged runs.
    """

    scorer: Selector
    label: str
    description: str
    schedule: str = "all"
    needs: tuple[str, ...] = ()
    min_points: Callable[[dict[str, Any]], int] = field(default=lambda o: 1, repr=False)
    zero_shot_point: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """Accepted options and their defaults (from the scorer's signature)."""
        params = list(inspect.signature(self.scorer).parameters.values())[4:]
        return {p.name: p.default for p in params}

    def resolve(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """The full options for a call: defaults, overridden by ``options`` after validation."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(
                f"`method={name!r}` has no option(s) {unknown}; its options are {sorted(self.options)}"
            )
        for key, value in options.items():
            check_option(key, value)
        return {**self.options, **options}


#: Valid values of the options the methods share: name → (test, what it must be).
OPTION_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "k": (lambda v: _is_int(v) and v >= 2, "an integer of at least 2 (a line needs two points)"),
    "delta": (lambda v: _is_real(v) and v > 0, "a positive number"),
    "holdouts": (lambda v: _is_int(v) and v >= 1, "an integer of at least 1"),
    "threshold": (lambda v: _is_real(v) and v > 0, "a positive number"),
    "floor": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "tau_all": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "tau_own": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "scheme": (lambda v: v in SCHEMES, f"one of {list(SCHEMES)}"),
    "own_scheme": (lambda v: v in SCHEMES, f"one of {list(SCHEMES)}"),
    "centre": (lambda v: isinstance(v, bool), "True or False"),
    "free_alpha": (lambda v: isinstance(v, bool), "True or False"),
    "huber_delta": (lambda v: _is_real(v) and v > 0, "a positive number"),
    "max_iter": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "seed": (lambda v: _is_int(v), "an integer"),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def check_option(key: str, value: Any) -> None:
    """Raise a ValueError naming ``key`` when ``value`` is not valid for it (:data:`OPTION_CHECKS`)."""
    check = OPTION_CHECKS.get(key)
    if check is not None and not check[0](value):
        raise ValueError(f"`{key}` must be {check[1]}, got {value!r}")


_LAW_OPTIONS = lambda law: lambda o: num_params(law, o.get("free_alpha", False))  # noqa: E731

METHODS: dict[str, Method] = {
    "robust_ats": Method(
        _robust_ats,
        "RobustAtS",
        "AtS on screened points (diverged and off-curve runs left out), with intervals and "
        "P(best) calibrated by in-budget backtests",
        min_points=lambda o: o["k"],
    ),
    "ats": Method(
        _ats,
        "AtS",
        "Accept then Stop: log-log line on the power-phase points, extrapolated",
        schedule="ats",
        min_points=lambda o: o["k"],
    ),
    "pooled": Method(
        _pooled,
        "Pooled",
        "local rectified-law extrapolation, exponent shared across candidates by in-budget backtest",
        schedule="pooled",
        min_points=lambda o: 2,
    ),
    "ourfit": Method(
        _ourfit,
        "OurFit",
        "rectified law fitted to all in-budget points incl. zero-shot",
        min_points=_LAW_OPTIONS("rectified"),
        zero_shot_point=True,
    ),
    "vanillafit": Method(
        _vanillafit,
        "VanillaFit",
        "vanilla law B/D^beta + E fitted to all in-budget points",
        min_points=_LAW_OPTIONS("vanilla"),
    ),
    "subtuning": Method(_subtuning, "SubTuning", "loss after fine-tuning on the budget-size subset"),
    "zeroshot": Method(
        _zeroshot, "ZeroShot", "loss without fine-tuning", needs=("zero_shot",), min_points=lambda o: 0
    ),
    "modelsize": Method(
        _modelsize,
        "ModelSize",
        "largest model first (score = -log parameter count)",
        needs=("num_params",),
        min_points=lambda o: 0,
    ),
}


def method_entry(method: str) -> Method:
    """The registry entry of ``method``, or a ValueError that lists the choices."""
    if method not in METHODS:
        text = str(method).lower().replace("-", "_")
        near = [k for k, m in METHODS.items() if text in (k, m.label.lower(), k.replace("_", ""))]
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"`method` should be one of {sorted(METHODS)}, got {method!r}{hint}")
    return METHODS[method]


def select(
    table: LossTable,
    method: str = DEFAULT_METHOD,
    budget: float | str = "1/8",
    target: float | None = None,
    level: float = 0.95,
    **options: Any,
) -> Selection:
    """Rank the candidates of ``table`` with ``method`` using only data within ``budget``.

    Args:
        table: the measured losses.
        method: one of :data:`METHODS` (default ``"robust_ats"``).
        budget: largest subset size the selector may use: a ratio of ``target`` (``"1/8"``,
            ``0.125``) or an absolute size (``204800``).
        target: the full fine-tuning set size to predict for (default: the table's largest size).
        level: coverage of the prediction intervals.
        **options: method options, e.g. ``k`` and ``delta`` for AtS, also ``holdouts``,
            ``threshold`` and ``floor`` for ``robust_ats``, ``k`` and ``holdouts`` for
            ``pooled``, ``free_alpha`` for fits.

    Example::

        table = LossTable.read_csv("flan.csv")
        select(table, budget="1/8").ranking[:3]
    """
    entry = method_entry(method)
    options = entry.resolve(method, options)
    target = table.max_size if target is None else float(target)
    if not np.isfinite(target) or target <= 0:
        raise ValueError(f"`target` must be a positive size, got {target!r}")
    budget_size = table.resolve_budget(budget, target)
    scored = entry.scorer(table, budget_size, target, level, **options)
    ranked = sorted((c for c in scored if c.rankable), key=lambda c: c.score)
    candidates = tuple(ranked) + tuple(c for c in scored if not c.rankable)
    return Selection(method, budget_size, target, candidates, level, table)
