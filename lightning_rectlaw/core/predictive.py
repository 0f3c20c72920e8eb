"""Honest uncertainty for an extrapolating selector, measured by backtests inside the budget.

A selector that extrapolates each candidate's curve (AtS) gives a point prediction and nothing to say how far
to trust it. This module measures that on the table at hand, without reading a loss beyond the budget: each
candidate's curve is cut short by :math:`h = 1..H` doublings, the extrapolator predicts the largest in-budget
point from what is left, and the error :math:`e_{ih}` in log loss is divided by the log distance extrapolated,
:math:`\\delta_{ih}`, to give an error rate :math:`r_{ih} = e_{ih} / \\delta_{ih}`.

Errors of different candidates are not independent: when every curve bends the same way, every
extrapolation is off the same way, which moves all predictions together and does not change
which candidate is best. So the rates are split into a part common to the table,
:math:`c_h = \\operatorname{mean}_i r_{ih}`, and each candidate's own part :math:`d_{ih} = r_{ih} - c_h`:

.. math::
    \\bar\\tau^2_{\\text{own}} = \\frac{\\sum_{ih} d_{ih}^2}{\\sum_h (N_h - 1)}, \\qquad
    \\bar\\tau^2_{\\text{all}} = \\operatorname{mean}_{ih} r_{ih}^2 .

A candidate's rates are shrunk toward the table's with the weight of :math:`\\kappa = H` observations:
:math:`\\tau_i^2 = (\\kappa \\bar\\tau^2 + \\sum_h x_{ih}^2) / (\\kappa + n_i)`. At the target,
:math:`\\Delta_i` log units beyond the candidate's largest point, the predictive distribution of its log loss
is normal around the point prediction with standard deviation :math:`\\tau_{\\text{all},i}\\,\\Delta_i` (the
interval), and the probability that it is the best treats the candidates' own errors,
:math:`\\tau_{\\text{own},i}\\,\\Delta_i`, as independent (the common part cancels in a comparison):

.. math::
    P(i \\text{ best}) = \\int \\phi_i(x) \\prod_{j \\ne i} \\bigl(1 - \\Phi_j(x)\\bigr)\\,dx ,

computed by quadrature on a grid (deterministic, linear in the number of candidates)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_ndtr, ndtri

#: How a prior error rate θ widens a backtest rate τ: ``floor`` max(τ, θ), ``prior`` sqrt(τ² + θ²),
#: ``scale`` θ·τ. A missing τ (no backtest) is θ for ``floor``/``prior`` and stays missing for ``scale``.
SCHEMES: tuple[str, ...] = ("floor", "prior", "scale")

#: Extrapolator: (ascending sizes, losses) of one curve → a predictor of loss at given sizes, or
#: ``None`` when the curve is too short.
Extrapolator = Callable[[np.ndarray, np.ndarray], "Callable[[np.ndarray], np.ndarray] | None"]


@dataclass(frozen=True)
class Calibration:
    """Error rates (log loss per unit of log distance) measured by in-budget backtests.

    Attributes:
        tau_all: per candidate, the rate of its total error (``nan`` where no backtest ran).
        tau_own: per candidate, the rate of its own error, the common shift removed.
        bias: the table's mean error rate (positive: the extrapolator predicts too high).
        tau_centred: per candidate, the rate of its total error around ``bias``.
        observations: backtests that entered (0: no interval and no P(best) can be given)."""

    tau_all: np.ndarray = field(repr=False)
    tau_own: np.ndarray = field(repr=False)
    observations: int
    bias: float = 0.0
    tau_centred: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PredictiveLine:
    """A point extrapolation with the calibrated spread around it (one candidate): the spread grows with
    the log distance beyond ``anchor_size``, the largest point the prediction used, at ``tau`` per unit
    (its total error rate); ``tau_own`` is the rate of its own error, the part that enters P(best)."""

    curve: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    anchor_size: float
    tau: float
    tau_own: float = float("nan")
    bias: float = 0.0

    def predict(self, sizes) -> np.ndarray:
        """Predicted test loss at ``sizes`` (the predictive median): the extrapolator's curve,
        corrected beyond ``anchor_size`` by the backtests' mean error rate ``bias`` (0: none)."""
        d = np.atleast_1d(np.asarray(sizes, dtype=float))
        dist = np.maximum(np.log(d / self.anchor_size), 0.0)
        return np.asarray(self.curve(d), dtype=float) * np.exp(-self.bias * dist)

    def sd_log(self, sizes) -> np.ndarray:
        """Standard deviation of the predicted log loss at ``sizes`` (0 inside the measured range)."""
        d = np.atleast_1d(np.asarray(sizes, dtype=float))
        return self.tau * np.maximum(np.log(d / self.anchor_size), 0.0)

    def quantile(self, sizes, q: float) -> np.ndarray:
        """``q``-quantile of the predicted test loss at ``sizes``."""
        return self.predict(sizes) * np.exp(ndtri(q) * self.sd_log(sizes))

    def interval(self, size: float, level: float = 0.95) -> tuple[float, float]:
        """Central ``level`` predictive interval at ``size``; ``(0, inf)`` without a backtest."""
        if not 0 < level < 1:
            raise ValueError(f"`level` must be in (0, 1), got {level!r}")
        if not np.isfinite(self.tau):
            return 0.0, float("inf")
        return float(self.quantile(size, 0.5 - level / 2)[0]), float(self.quantile(size, 0.5 + level / 2)[0])


def inflate(tau, theta: float, scheme: str) -> np.ndarray:
    """Widen backtest error rates ``tau`` by the prior rate ``theta`` (see :data:`SCHEMES`)."""
    tau = np.asarray(tau, dtype=float)
    if scheme == "floor":
        return np.where(np.isfinite(tau), np.maximum(tau, theta), theta if theta > 0 else np.nan)
    if scheme == "prior":
        return np.sqrt(np.where(np.isfinite(tau), tau**2, 0.0) + theta**2) if theta > 0 else tau
    if scheme == "scale":
        return theta * tau
    raise ValueError(f"`scheme` should be one of {SCHEMES}, got {scheme!r}")


def backtest_rates(
    sizes: np.ndarray, losses: np.ndarray, extrapolate: Extrapolator, holdouts: int = 3
) -> np.ndarray:
    """Error rates ``r[i, h-1]`` of predicting each row's largest point from the row cut by ``h``. ``nan``
    where a row has too few points for the extrapolator at that depth. Only the points given are read: pass
    the in-budget points."""
    sizes = np.asarray(sizes, dtype=float)
    losses = np.atleast_2d(np.asarray(losses, dtype=float))
    rates = np.full((losses.shape[0], holdouts), np.nan)
    for i, row in enumerate(losses):
        ok = np.isfinite(row)
        s, y = sizes[ok], row[ok]
        for h in range(1, min(holdouts, s.size - 1) + 1):
            predictor = extrapolate(s[:-h], y[:-h])
            if predictor is None:
                break
            err = np.log(float(predictor(s[-1:])[0])) - np.log(y[-1])
            rates[i, h - 1] = err / np.log(s[-1] / s[-1 - h])
    return rates


def calibrate(rates: np.ndarray) -> Calibration:
    """Split backtest error rates into the table's common shift and each candidate's own error."""
    rates = np.atleast_2d(np.asarray(rates, dtype=float))
    have = np.isfinite(rates)
    n_obs = int(have.sum())
    nan = np.full(rates.shape[0], np.nan)
    if n_obs == 0:
        return Calibration(nan, nan.copy(), 0, 0.0, nan.copy())
    kappa = rates.shape[1]
    per_depth = have.sum(axis=0)
    common = np.where(per_depth > 0, np.nansum(rates, axis=0) / np.maximum(per_depth, 1), 0.0)
    own = np.where(have, rates - common, np.nan)
    dof = int(np.sum(np.maximum(per_depth - 1, 0)))
    tau2_all = float(np.nanmean(rates**2))
    # One candidate (or one per depth): nothing to tell common from own; treat it all as own.
    tau2_own = float(np.nansum(own**2) / dof) if dof > 0 else tau2_all
    counts = have.sum(axis=1)
    shrink = lambda x2, t2: (kappa * t2 + np.nansum(x2, axis=1)) / (kappa + counts)  # noqa: E731
    own_sq = own**2 if dof > 0 else rates**2
    bias = float(np.nanmean(rates))
    centred = (rates - bias) ** 2
    return Calibration(
        np.sqrt(shrink(rates**2, tau2_all)),
        np.sqrt(shrink(own_sq, tau2_own)),
        n_obs,
        bias,
        np.sqrt(shrink(centred, float(np.nanmean(centred)))),
    )


def prob_best(means: np.ndarray, sds: np.ndarray, grid: int = 4001) -> np.ndarray:
    """Probability that each independent normal ``N(means[i], sds[i]^2)`` is the smallest.

    ``nan`` entries are out of the race (probability ``nan``). A zero standard deviation is a certain value.

    Example:
        >>> prob_best(np.array([0.0, 0.0]), np.array([1.0, 1.0])).round(3).tolist()
        [0.5, 0.5]
        >>> prob_best(np.array([0.0, 1.0, np.nan]), np.array([1e-9, 1e-9, 1.0])).round(3).tolist()
        [1.0, 0.0, nan]
    """
    means = np.asarray(means, dtype=float)
    sds = np.asarray(sds, dtype=float)
    out = np.full(means.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(means) & np.isfinite(sds))
    if idx.size == 0:
        return out
    if idx.size == 1:
        out[idx] = 1.0
        return out
    m, s = means[idx], np.maximum(sds[idx], 1e-9 * (1 + np.abs(means[idx])))
    lo, hi = np.min(m - 9 * s), np.max(m + 9 * s)
    x = np.linspace(lo, hi, grid)
    dx = x[1] - x[0]
    # log P(X_j > x) for every candidate; the product over j != i is the sum minus its own term.
    log_surv = log_ndtr((m[:, None] - x) / s[:, None])
    total = log_surv.sum(axis=0)
    for j in range(idx.size):
        # density of candidate j, integrated over each grid cell (exact for a narrow normal)
        cdf = np.exp(log_ndtr((x + dx / 2 - m[j]) / s[j])) - np.exp(log_ndtr((x - dx / 2 - m[j]) / s[j]))
        out[idx[j]] = float(np.sum(cdf * np.exp(total - log_surv[j])))
    out[idx] /= out[idx].sum()
    return out
