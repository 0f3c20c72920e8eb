"""Find the runs that must not decide a ranking: diverged runs and points far off their curve.

A fine-tuning curve is smooth in log-log space, so each point can be checked against the line
through its neighbours (up to two on each side, the point itself left out). With :math:`r_j` that
leave-one-out residual of :math:`\\log L`, a point is an **outlier** when

.. math::
    |r_j| > \\max(c\\,\\hat\\sigma,\\ f) \\cdot w_j

where :math:`\\hat\\sigma = q_{25}(|r|) / 0.3186` is the robust noise scale of all points screened
together (a whole table, or one curve), :math:`c` the ``threshold`` (default 8), :math:`f` the ``floor``
(default 0.1, a 10% deviation) and :math:`w_j = 2` for the two end points, which are checked by extrapolation
and may legitimately bend (a curve entering its power phase right at the budget), 1 elsewhere. Of the points
beyond the bound, the one whose removal leaves the smoothest rest goes first and the curve is checked again,
so one bad run does not hide behind, or take with it, the clean neighbours it pulls. A run is **diverged**
when its loss exceeds the zero-shot loss by more than ``diverged_factor`` (default 1.5×; real curves in the
paper's tables rise at most 1.22× above it in their pre-power phase).

Example:
    >>> import numpy as np
    >>> sizes = 200 * 2.0 ** np.arange(8)
    >>> losses = 3.0 / (20 + sizes**0.3)
    >>> losses[5] *= 1.3                     # one bad run, 30% high
    >>> screen = screen_outliers(sizes, losses[None])
    >>> screen.outliers[0]
    {6400.0: 'off the curve: 32% above its neighbours'}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class OutlierWarning(UserWarning):
    """Runs were left out of a selection as diverged or off their curves (named in the message)."""


@dataclass(frozen=True)
class Screen:
    """Which points of a table survive screening.

    Attributes:
        keep: candidates × sizes, ``True`` for a finite point that was not flagged.
        outliers: per candidate, flagged size → why (missing runs are not listed).
        scale: the robust noise scale :math:`\\hat\\sigma` of log loss the check used."""

    keep: np.ndarray = field(repr=False)
    outliers: tuple[dict[float, str], ...]
    scale: float

    def clean(self, losses: np.ndarray) -> np.ndarray:
        """``losses`` with the flagged points set to ``nan`` (missing)."""
        return np.where(self.keep, losses, np.nan)


#: A point this many robust scales off its curve is left out (``threshold``).
SCREEN_THRESHOLD = 8.0
#: Relative deviation below which no point is left out (``floor``).
SCREEN_FLOOR = 0.1


def screen_outliers(
    sizes: Sequence[float] | np.ndarray,
    losses: np.ndarray,
    zero_shot: Sequence[float] | np.ndarray | None = None,
    threshold: float = SCREEN_THRESHOLD,
    floor: float = SCREEN_FLOOR,
    diverged_factor: float = 1.5,
    max_outliers: int = 2,
) -> Screen:
    """Flag diverged runs and points far off their curve (see the module docstring).

    Args:
        sizes: ascending positive subset sizes shared by the rows.
        losses: candidates × sizes; ``nan`` is a missing run (never flagged).
        zero_shot: per-candidate loss before fine-tuning (``nan`` where unknown), or ``None``.
        threshold, floor: the outlier bound :math:`\\max(c\\hat\\sigma, f)` in log loss.
        diverged_factor: a loss above this multiple of the zero-shot loss is a diverged run.
        max_outliers: at most this many off-curve points per candidate are removed.

    Raises:
        ValueError: shapes that disagree, or non-positive options."""
    sizes = np.asarray(sizes, dtype=float)
    losses = np.atleast_2d(np.asarray(losses, dtype=float))
    if losses.shape[1] != sizes.size:
        raise ValueError(f"`losses` has {losses.shape[1]} columns but there are {sizes.size} sizes")
    if not (threshold > 0 and floor >= 0 and diverged_factor > 1 and max_outliers >= 0):
        raise ValueError(
            "need threshold > 0, floor >= 0, diverged_factor > 1 and max_outliers >= 0, got "
            f"{threshold}, {floor}, {diverged_factor}, {max_outliers}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.isfinite(losses) & (losses > 0)
        logx, logy = np.log(sizes), np.where(keep, np.log(np.where(keep, losses, 1.0)), np.nan)
    outliers: list[dict[float, str]] = [{} for _ in range(losses.shape[0])]

    if zero_shot is not None:
        _flag_diverged(
            sizes, losses, np.asarray(zero_shot, dtype=float).ravel(), diverged_factor, keep, outliers
        )

    resid = [_loo_residuals(logx[m], logy[i, m]) for i, m in enumerate(keep)]
    pooled = np.abs(np.concatenate([r for r in resid if r.size] or [np.empty(0)]))
    # The lower quartile, not the median: one bad run pulls its own and up to four neighbours'
    # residuals, which on a single short curve is most of them. |N(0, 1)| has q25 = 0.3186.
    scale = float(np.quantile(pooled, 0.25) / 0.3186) if pooled.size else float("nan")
    bound = max(threshold * scale, floor) if np.isfinite(scale) else float("inf")
    for i in range(losses.shape[0]):
        for _ in range(max_outliers):
            idx = np.flatnonzero(keep[i])
            worst = _worst_point(logx[idx], logy[i, idx], bound)
            if worst is None:
                break
            j, r = idx[worst[0]], worst[1]
            keep[i, j] = False
            side = "above" if r > 0 else "below"
            outliers[i][float(sizes[j])] = f"off the curve: {abs(np.expm1(r)):.0%} {side} its neighbours"
    return Screen(keep, tuple(outliers), scale)


def _worst_point(x: np.ndarray, y: np.ndarray, bound: float) -> tuple[int, float] | None:
    """The point to remove, with its residual, or ``None`` when the curve is within ``bound``. The suspects
    are the points beyond the bound and their neighbours (a run 30% high at the budget makes the point below
    it look low); the one removed leaves the smallest largest weighted residual (ties: the larger own one)."""
    r = _loo_residuals(x, y)
    if r.size == 0:
        return None
    over = np.flatnonzero(np.abs(r) > bound * _end_weights(r.size))
    if over.size == 0:
        return None
    suspects = np.unique(np.clip(over[:, None] + np.arange(-2, 3), 0, x.size - 1))
    rest = []
    for j in suspects:
        others = np.delete(np.arange(x.size), j)
        rr = _loo_residuals(x[others], y[others])
        rest.append(np.max(np.abs(rr) / _end_weights(rr.size)) if rr.size else 0.0)
    own = np.abs(r[suspects]) / _end_weights(r.size)[suspects]
    j = int(suspects[np.lexsort((-own, np.round(rest, 12)))[0]])
    return j, float(r[j])


def _end_weights(n: int) -> np.ndarray:
    """The bound's weight per point: 2 for the two end points (checked by extrapolation)."""
    w = np.ones(n)
    w[[0, -1]] = 2.0
    return w


def _flag_diverged(sizes, losses, zero_shot, factor: float, keep: np.ndarray, outliers: list[dict]) -> None:
    """Flag (in ``keep`` and ``outliers``) the runs whose loss is over ``factor`` times their
    candidate's zero-shot loss."""
    for i, z in enumerate(zero_shot):
        if np.isfinite(z) and z > 0:
            for j in np.flatnonzero(keep[i] & (losses[i] > factor * z)):
                keep[i, j] = False
                outliers[i][float(sizes[j])] = (
                    f"diverged: loss {losses[i, j]:.4g} is over {factor:g}x the zero-shot loss {z:.4g}"
                )


def _loo_residuals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Residual of each point from the line through its (up to 2 + 2) neighbours, itself left out;
    empty for a curve of fewer than 4 points: too few to tell a bad point from a bend."""
    n = x.size
    if n < 4:
        return np.empty(0)
    out = np.empty(n)
    for j in range(n):
        nb = [i for i in range(max(0, j - 2), min(n, j + 3)) if i != j]
        xs, ys = x[nb], y[nb]
        xm = xs.mean()
        slope = np.dot(xs - xm, ys - ys.mean()) / np.dot(xs - xm, xs - xm)
        out[j] = y[j] - (ys.mean() + slope * (x[j] - xm))
    return out
