"""Accept then Stop (AtS), exactly as the paper's code runs it, and ``robust_ats``: AtS on
screened points, with intervals and P(best) calibrated by in-budget backtests."""

from __future__ import annotations

import warnings
from dataclasses import replace as _replace

import numpy as np

from lightning_rectlaw.core.lines import LineFit, fit_line
from lightning_rectlaw.core.predictive import (
    Calibration,
    PredictiveLine,
    backtest_rates,
    calibrate,
    inflate,
    prob_best,
)
from lightning_rectlaw.core.screening import OutlierWarning, Screen, screen_outliers
from lightning_rectlaw.selection.options import DELTA, FLOOR, HOLDOUTS, THRESHOLD, K
from lightning_rectlaw.selection.scores import CandidateScore
from lightning_rectlaw.selection.scores import in_budget as _in_budget


def accept_then_stop(
    sizes: np.ndarray, losses: np.ndarray, k: int = K.default, delta: float = DELTA.default
) -> tuple[LineFit | None, str | None]:
    """The paper's AtS point selection on one candidate's curve, as its released code runs it.

    Walking down from the largest subset: the ``k`` largest points are accepted; each next (smaller) point is
    tested against the least-squares line, in log-log space, through *all* points accepted so far, and
    accepted while its log-loss lies within ``delta`` standard deviations (population std) of that line's
    residuals. The walk stops at the first point that does not, which is left out. The final line is fitted to
    the accepted points, with one rule of the paper's code: when the walk accepts every point down to the
    smallest without stopping, the smallest one is left out of the final line all the same (the code's loop
    index ends one short). With ``k`` points or fewer, all of them are used.

    Missing points (``NaN``) are skipped. Returns the line fit, or ``None`` with the reason
    when fewer than ``k`` points are available."""
    ok = np.isfinite(losses)
    s, y = sizes[ok][::-1], losses[ok][::-1]
    if s.size < k:
        return None, f"AtS needs k={k} points within the budget, found {s.size}"
    n, stopped = _ats_walk(s, y, k, delta)
    if not stopped and s.size > k:  # walked to the smallest point: the paper's code drops it
        n = s.size - 1
    return fit_line(s[:n], y[:n]), None


def ats_stopped(
    sizes: np.ndarray, losses: np.ndarray, k: int = K.default, delta: float = DELTA.default
) -> bool:
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


def _ats(table, budget, target, level, *, k: int, delta: float):
    sizes, losses = _in_budget(table, budget)
    out = []
    for name, row in zip(table.names, losses):
        line, reason = accept_then_stop(sizes, row, k=k, delta=delta)
        if line is None:
            out.append(CandidateScore(name, score=np.nan, reason=reason))
            continue
        used = tuple(line.sizes.tolist())
        finite = sizes[np.isfinite(row)][::-1]
        run = used + tuple(finite[len(used) : len(used) + 1].tolist())  # the point that stopped it
        out.append(CandidateScore.predicted(name, line, target, level, sizes_used=used, sizes_run=run))
    return out


def calibrate_ats(
    sizes: np.ndarray,
    losses: np.ndarray,
    zero_shot: np.ndarray | None = None,
    *,
    k: int = K.default,
    delta: float = DELTA.default,
    holdouts: int = HOLDOUTS.default,
    threshold: float = THRESHOLD.default,
    floor: float = FLOOR.default,
) -> tuple[Screen, np.ndarray, Calibration]:
    """``robust_ats``'s first two steps on in-budget points: screen out bad runs, then backtest AtS;
    returns the screen, the losses with the flagged runs missing, and the calibration."""
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
    *,
    scheme: str,
    centre: bool,
    tau_all: float,
    own_scheme: str,
    tau_own: float,
    **ats: float,
):
    """``ats``: ``calibrate_ats``'s ``k``, ``delta``, ``holdouts``, ``threshold`` and ``floor``."""
    sizes, losses = _in_budget(table, budget)
    screen, clean, cal = calibrate_ats(sizes, losses, table.zero_shot, **ats)
    k, delta = ats["k"], ats["delta"]
    spread = inflate(cal.tau_centred if centre else cal.tau_all, tau_all, scheme)
    spread_own = inflate(cal.tau_own, tau_own, own_scheme)
    bias = cal.bias if centre and cal.observations else 0.0
    out = []
    for i, (name, row) in enumerate(zip(table.names, clean)):
        line, reason = accept_then_stop(sizes, row, k=k, delta=delta)
        left_out = screen.outliers[i]
        if line is None:
            if left_out:
                reason += f" after leaving out {len(left_out)} bad run(s)"
            out.append(CandidateScore(name, score=np.nan, reason=reason, outliers=left_out))
            continue
        finite = sizes[np.isfinite(row)]
        curve = PredictiveLine(line.predict, float(finite[-1]), float(spread[i]), float(spread_own[i]), bias)
        run = tuple(float(x) for x in sizes[np.isfinite(losses[i])])
        used = tuple(line.sizes.tolist())
        out.append(
            CandidateScore.predicted(
                name, curve, target, level, sizes_used=used, sizes_run=run, outliers=left_out
            )
        )
    # each rankable candidate's log prediction and the spread of its own error there
    means = np.array([np.log(c.score) for c in out])
    spreads = np.array(
        [c.fit.tau_own * np.log(target / c.fit.anchor_size) if c.rankable else np.nan for c in out]
    )
    probs = prob_best(means, spreads) if np.isfinite(spreads).any() else None
    if probs is not None:
        out = [c if np.isnan(p) else _replace(c, prob_best=float(p)) for c, p in zip(out, probs)]
    if bad := {c.name: c.outliers for c in out if c.outliers}:
        listed = "; ".join(
            f"{n}: " + ", ".join(f"{size:g} ({why})" for size, why in o.items()) for n, o in bad.items()
        )
        warnings.warn(f"left out of the ranking as bad runs: {listed}", OutlierWarning, stacklevel=3)
    return out
