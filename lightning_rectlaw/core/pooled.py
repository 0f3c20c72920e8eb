"""The ``pooled`` selector: local rectified-law extrapolation with an exponent shared by the table.

Why: AtS extrapolates each candidate's last log-log line unchanged, but fine-tuning curves keep
steepening after the pre-power phase, and which candidates still steepen decides the ranking.
Fitting the full rectified law per candidate models this but is unstable on a handful of noisy
points. ``pooled`` keeps AtS's cheap, stable local line and borrows one number, the power-phase
exponent β, from all candidates at once, choosing it by how well it predicts in-budget points.

The math, for candidate *i* with finite in-budget points :math:`D_1 < \\dots < D_n`:

1. **Local state.** A least-squares line through the last ``k`` points in log-log space gives the
   fitted log loss :math:`y_0` at :math:`D_n` and the slope :math:`s \\le 0`.
2. **Continuation.** Under the rectified law with :math:`E = 0`,
   :math:`\\log L = \\log B - \\log(D_l + D^\\beta)`, the local slope is :math:`-\\beta u` with
   :math:`u = D^\\beta / (D_l + D^\\beta)` the share of the power phase reached, and the curve goes on
   as :math:`\\log L(D) = y_0 - \\log(1 - u + u\\,(D/D_n)^\\beta)`. Given β, :math:`u = -s/\\beta`
   (β is raised to :math:`-s` for a curve already steeper than β: a pure power law).
3. **Shared β by backtesting** (in-budget data only). For each β on a log grid :math:`\\{\\beta_g\\}` and each
   hold-out depth :math:`h = 1..H`, every candidate predicts its largest point :math:`D_n` from the state
   computed without its :math:`h` largest points; the error :math:`e_{ghi}` is divided by the log distance
   extrapolated, :math:`\\Delta_{hi}`. With :math:`S_g` the mean of :math:`(e/\\Delta)^2`, the weights are a
   Gaussian profile likelihood :math:`w_g \\propto S_g^{-H'/2}`, where :math:`H'` is the number of hold-out
   depths used — the effective sample size, not :math:`N H`, because the candidates' errors share the misfit
   of one β and are not independent evidence about it.
4. **Error scale.** Per unit of log distance, :math:`\\tau_i^2 = (H' \\bar\\tau^2 + n_i t_i^2) /
   (H' + n_i)`: the candidate's own mean :math:`w`-weighted squared backtest error :math:`t_i^2`
   over its :math:`n_i` hold-outs, shrunk toward the table's :math:`\\bar\\tau^2`.
5. **Predictive distribution** of :math:`\\log L_i(D)`: the mixture
   :math:`\\sum_g w_g\\,\\mathcal N(\\mu_{gi}(D), (\\tau_i \\log(D/D_n))^2)`. The point prediction is
   its median, the interval its quantiles, and the probability that candidate *i* is the best is
   estimated by Monte Carlo with β drawn once per draw for all candidates (it is shared), so a
   common shift of every prediction does not blur the comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

#: The shared exponents considered: 25 values, log-spaced from 0.03 to 1.5 (fixed, wide on purpose).
BETA_GRID: np.ndarray = np.geomspace(0.03, 1.5, 25)


@dataclass(frozen=True)
class PooledCurve:
    """One candidate's predictive distribution under :func:`fit_pooled`.

    Attributes:
        sizes, losses: the candidate's points (finite, in budget, ascending).
        anchor_size: :math:`D_n`, the largest point, where the extrapolation starts.
        anchor_log_loss, slope: the local line's fitted log loss at ``anchor_size`` and slope.
        tau: predictive standard deviation of log loss per unit of log distance (``nan`` when no
            backtest was possible; then there is no interval)."""

    sizes: np.ndarray = field(repr=False)
    losses: np.ndarray = field(repr=False)
    anchor_size: float
    anchor_log_loss: float
    slope: float
    tau: float
    _betas: np.ndarray = field(repr=False)
    _weights: np.ndarray = field(repr=False)

    def _components(self, sizes) -> tuple[np.ndarray, np.ndarray]:
        """Means (grid × sizes) and standard deviations (sizes) of log loss."""
        x = np.log(np.atleast_1d(np.asarray(sizes, dtype=float)))
        dist = np.maximum(x - np.log(self.anchor_size), 0.0)
        mu = _continue(self.anchor_log_loss, self.slope, dist, self._betas)
        return mu, (self.tau if np.isfinite(self.tau) else 0.0) * dist

    def quantile(self, sizes, q: float) -> np.ndarray:
        """``q``-quantile of the predicted test loss at ``sizes``."""
        mu, sd = self._components(sizes)
        return np.exp(_mixture_quantile(self._weights, mu, sd, q))

    def predict(self, sizes) -> np.ndarray:
        """Predicted test loss at ``sizes``: the predictive median."""
        return self.quantile(sizes, 0.5)

    def interval(self, size: float, level: float = 0.95) -> tuple[float, float]:
        """Central ``level`` predictive interval at ``size``; ``(0, inf)`` without a backtest."""
        if not np.isfinite(self.tau):
            return 0.0, float("inf")
        return float(self.quantile(size, 0.5 - level / 2)[0]), float(self.quantile(size, 0.5 + level / 2)[0])


@dataclass(frozen=True)
class PooledFit:
    """The table-level result: β weights, backtest figures and each candidate's curve.

    Attributes:
        betas, weights: the β grid and its posterior weights (sum to 1).
        holdouts: hold-out depths :math:`H'` that entered the backtest (0: none was possible and
            the weights are uniform).
        tau_pooled: the table's error scale :math:`\\bar\\tau` (``nan`` without a backtest).
        curves: one :class:`PooledCurve` per input row (``None`` for a row with under 2 points)."""

    betas: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    holdouts: int
    tau_pooled: float
    curves: tuple[PooledCurve | None, ...] = field(repr=False)

    @property
    def beta(self) -> float:
        """Posterior mean of the shared exponent (for reporting)."""
        return float(self.weights @ self.betas)

    def quantiles(self, target: float, qs: Sequence[float]) -> np.ndarray:
        """Predicted loss quantiles at ``target``: rows × len(qs) (``nan`` rows for unfitted ones)."""
        out = np.full((len(self.curves), len(qs)), np.nan)
        idx, mu, sd = self._stacked(target)
        for j, q in enumerate(qs if idx else ()):
            out[idx, j] = np.exp(_mixture_quantile(self.weights, mu, sd, q))
        return out

    def _stacked(self, target: float) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Fitted rows, their component means (grid × rows) and standard deviations at ``target``."""
        idx = [i for i, c in enumerate(self.curves) if c is not None]
        if not idx:
            return idx, np.empty((self.betas.size, 0)), np.empty(0)
        mus, sds = zip(*(self.curves[i]._components(target) for i in idx))
        return idx, np.concatenate(mus, axis=1), np.concatenate(sds)

    def prob_best(self, target: float, draws: int = 20_000, seed: int = 0) -> np.ndarray:
        """Probability that each row has the lowest loss at ``target`` (``nan`` for unfitted rows), by
        Monte Carlo with a fixed ``seed`` (module docstring, step 5); all ``nan`` without a backtest."""
        out = np.full(len(self.curves), np.nan)
        idx, mu, sd = self._stacked(target)
        if not idx or not np.isfinite(self.tau_pooled):
            return out
        rng = np.random.default_rng(seed)
        wins = np.zeros(len(idx))
        chunk = max(1, 2_000_000 // len(idx))
        for start in range(0, draws, chunk):
            m = min(chunk, draws - start)
            g = rng.choice(len(self.weights), size=m, p=self.weights)
            y = mu[g] + sd * rng.standard_normal((m, len(idx)))
            wins += np.bincount(np.argmin(y, axis=1), minlength=len(idx))
        out[idx] = wins / draws
        return out


def fit_pooled(
    sizes: Sequence[float] | np.ndarray,
    losses: np.ndarray,
    k: int = 3,
    holdouts: int = 3,
    betas: np.ndarray = BETA_GRID,
) -> PooledFit:
    """Fit the ``pooled`` model (see the module docstring) to a table of curves.

    Args:
        sizes: ascending positive subset sizes, shared by all rows.
        losses: candidates × sizes test losses; ``nan`` marks a missing point.
        k: points in each local line (AtS's ``k``).
        holdouts: deepest hold-out used in the backtest.
        betas: the grid of shared exponents.

    Raises:
        ValueError: ``k < 2``, ``holdouts < 1``, shapes that disagree, or sizes that are not
            positive and ascending.

    Example:
        >>> sizes = 200 * 2.0 ** np.arange(8)
        >>> losses = np.array([3.0 / (d + sizes**0.3) for d in (5.0, 20.0, 60.0)])
        >>> fit = fit_pooled(sizes, losses)  # three curves sharing beta = 0.3
        >>> fit.holdouts
        3
        >>> fit.quantiles(8 * sizes[-1], [0.5]).round(3).ravel().tolist()  # true: 0.068 0.051 0.030
        [0.067, 0.051, 0.031]
    """
    if k < 2:
        raise ValueError(f"`k` must be at least 2 to fit a line, got {k}")
    if holdouts < 1:
        raise ValueError(f"`holdouts` must be at least 1, got {holdouts}")
    sizes = np.asarray(sizes, dtype=float)
    losses = np.atleast_2d(np.asarray(losses, dtype=float))
    if losses.shape[1] != sizes.size:
        raise ValueError(f"`losses` has {losses.shape[1]} columns but there are {sizes.size} sizes")
    if np.any(sizes <= 0) or np.any(np.diff(sizes) <= 0):
        raise ValueError("`sizes` must be positive and strictly ascending (leave the zero-shot point out)")
    betas = np.asarray(betas, dtype=float)
    keep = [np.isfinite(row) & (row > 0) for row in losses]
    rows = [(np.log(sizes[ok]), np.log(row[ok])) for row, ok in zip(losses, keep)]

    weights, n_used, tau_pooled, tau2 = _backtest(rows, k, holdouts, betas)
    curves = []
    for i, (x, y) in enumerate(rows):
        if x.size < 2:
            curves.append(None)
            continue
        y0, s = _local_line(x, y, k)
        d, loss = sizes[keep[i]], losses[i, keep[i]]
        curves.append(PooledCurve(d, loss, float(d[-1]), y0, s, float(np.sqrt(tau2[i])), betas, weights))
    return PooledFit(betas, weights, n_used, tau_pooled, tuple(curves))


def _backtest(
    rows: list[tuple[np.ndarray, np.ndarray]], k: int, holdouts: int, betas: np.ndarray
) -> tuple[np.ndarray, int, float, np.ndarray]:
    """The in-budget backtest over the curves (``rows``: log sizes, log losses): the weight of each exponent,
    the candidates it used, the pooled error rate and each candidate's own (squared, shrunk to the pooled)."""
    # err[g, i, h] / dist[i, h] for every candidate with enough points at depth h
    per_unit = np.full((betas.size, len(rows), holdouts), np.nan)
    for i, (x, y) in enumerate(rows):
        for h in range(1, holdouts + 1):
            if x.size - h < k:
                break
            y0, s = _local_line(x[:-h], y[:-h], k)
            dist = x[-1] - x[-1 - h]
            per_unit[:, i, h - 1] = (_continue(y0, s, np.array([dist]), betas)[:, 0] - y[-1]) / dist
    n_used = int(np.isfinite(per_unit[0]).any(axis=0).sum())
    if not n_used:
        return np.full(betas.size, 1.0 / betas.size), 0, float("nan"), np.full(len(rows), np.nan)
    sq = per_unit**2
    score = np.nanmean(sq.reshape(betas.size, -1), axis=1)
    loglik = -0.5 * n_used * np.log(np.maximum(score, 1e-300))
    weights = np.exp(loglik - loglik.max())
    weights /= weights.sum()
    per_cand = np.einsum("g,gih->ih", weights, np.nan_to_num(sq))  # zero where missing
    counts = np.isfinite(per_unit[0]).sum(axis=1)
    tau2_pooled = per_cand.sum() / counts.sum()
    tau2 = (n_used * tau2_pooled + per_cand.sum(axis=1)) / (n_used + counts)
    return weights, n_used, float(np.sqrt(tau2_pooled)), tau2


def _local_line(x: np.ndarray, y: np.ndarray, k: int) -> tuple[float, float]:
    """Fitted log loss at the last point and slope (clipped at 0) of the line through the last k."""
    x, y = x[-k:], y[-k:]
    xm = x.mean()
    slope = float(np.dot(x - xm, y - y.mean()) / np.dot(x - xm, x - xm))
    return float(y.mean() + slope * (x[-1] - xm)), min(slope, 0.0)


def _continue(y0: float, slope: float, dist: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Rectified continuation (betas × distances) of log loss from a local line's end."""
    b = np.maximum(betas, -slope)[:, None]
    u = np.clip(-slope / b, 0.0, 1.0)
    return y0 - np.log1p(u * np.expm1(b * dist[None, :]))


def _mixture_quantile(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, q: float) -> np.ndarray:
    """Quantile of sum_g w_g N(mu[g, j], sd[j]^2) for each column j, by bisection."""
    sd = np.maximum(sd, 1e-12)
    lo = mu.min(axis=0) - 12 * sd
    hi = mu.max(axis=0) + 12 * sd
    for _ in range(64):
        mid = (lo + hi) / 2
        below = w @ ndtr((mid - mu) / sd) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2
