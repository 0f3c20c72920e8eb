"""Fine-tuning scaling laws: the rectified law and the vanilla law, fitted in log space.

The rectified law of Lin et al. (ICML 2024) is

.. math::
    L(D) = \\left(\\frac{B}{D_l + D^\\beta} + E\\right)^\\alpha

where :math:`D_l` is the *pre-learned data size*; the vanilla law is the same with :math:`D_l = 0`.
Both are fitted by minimising a Huber loss on the residuals of :math:`\\log L`, the paper's
objective, with :math:`\\alpha = 1` by default (the paper's 4-parameter fits).

Example:
    >>> import numpy as np
    >>> sizes = np.array([0, 200, 400, 800, 1600, 3200, 6400, 12800, 25600])
    >>> losses = (3.0e3 / (40.0 + sizes**0.8) + 1.5)
    >>> fit = fit_law(sizes, losses)
    >>> round(fit.beta, 2), round(float(fit.predict(51200)), 4)
    (0.8, 2.009)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

import numpy as np
from scipy.special import stdtrit

from .optimize import _ALPHA, _B, _BETA, _DL, _E, _LOWER, _UPPER, _model, _multistart, _safe_log

Law = Literal["rectified", "vanilla"]
LAWS: tuple[str, ...] = ("rectified", "vanilla")
DEFAULT_HUBER_DELTA = 0.1

_NAMES = ("B", "pre_learned_size", "beta", "E", "alpha")
# Why the optimiser stopped, by the code _levenberg_marquardt returns.
_REASONS = (
    "stopped at the iteration limit",
    "converged: relative improvement below tolerance",
    "converged: no step improves the objective (a minimum)",
    "converged: exact fit (objective zero)",
    "not started: the starting point is not finite",
)


class FitConvergenceWarning(UserWarning):
    """A law fit stopped before it converged; the result is flagged ``converged=False``."""


def num_params(law: Law, free_alpha: bool = False) -> int:
    """Number of fitted parameters: 4 for the rectified law, 3 for the vanilla one, +1 for free α."""
    _check_law(law)
    return (4 if law == "rectified" else 3) + int(free_alpha)


def law_value(
    sizes: np.ndarray | Sequence[float] | float,
    B: float,
    beta: float,
    E: float,
    pre_learned_size: float = 0.0,
    alpha: float = 1.0,
) -> np.ndarray:
    """Evaluate :math:`(B / (D_l + D^\\beta) + E)^\\alpha` at ``sizes`` (vanilla law when ``D_l = 0``)."""
    d = np.asarray(sizes, dtype=float)
    with np.errstate(divide="ignore"):
        power = np.where(d > 0, np.power(np.maximum(d, 1e-300), beta), 0.0)
        return (B / (pre_learned_size + power) + E) ** alpha


@dataclass(frozen=True)
class FitResult:
    """A fitted scaling law.

    Attributes:
        law: ``"rectified"`` or ``"vanilla"``.
        B, pre_learned_size, beta, E, alpha: the law's parameters (``pre_learned_size`` is the
            paper's :math:`D_l`, 0 for the vanilla law).
        sizes, losses: the points the law was fitted on.
        rmse_log: root-mean-square residual of :math:`\\log L` over the fitted points.
        objective: final Huber objective (sum over points).
        converged: whether the optimiser met its tolerance; a ``False`` fit is still the best
            point found, but treat its numbers with suspicion.
        message: why the optimiser stopped.
        iterations: Levenberg–Marquardt iterations of the best start.
        at_bound: parameters pinned at a bound of the search (e.g. ``E`` at its floor of 1e-8:
            the curve shows no floor). They are held fixed, not estimated, in :meth:`interval`."""

    law: str
    _: KW_ONLY
    B: float
    pre_learned_size: float
    beta: float
    E: float
    alpha: float
    sizes: np.ndarray = field(repr=False)
    losses: np.ndarray = field(repr=False)
    rmse_log: float
    objective: float
    converged: bool
    message: str
    iterations: int
    at_bound: tuple[str, ...]
    _theta: np.ndarray = field(repr=False)
    _free: np.ndarray = field(repr=False)
    _cov: np.ndarray = field(repr=False)
    _sigma2: float = field(repr=False)
    _dof: int = field(repr=False)

    @property
    def params(self) -> dict[str, float]:
        """The named parameters as a plain dict."""
        return {name: getattr(self, name) for name in _NAMES}

    def predict(self, sizes: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Predicted test loss after fine-tuning on ``sizes`` examples."""
        return law_value(sizes, self.B, self.beta, self.E, self.pre_learned_size, self.alpha)

    def interval(
        self, sizes: np.ndarray | Sequence[float] | float, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prediction interval for the loss of a new fine-tuning run at ``sizes``. Computed by linearisation
        (the delta method, i.e. a Laplace approximation around the optimum): in log space the prediction
        variance is :math:`g^\\top \\Sigma g + \\hat\\sigma^2`, where :math:`g` is the gradient of
        :math:`\\log L(D)` in the free parameters, :math:`\\Sigma = \\hat\\sigma^2 (J^\\top J)^+` the
        parameter covariance and :math:`\\hat\\sigma^2` the residual variance with ``n - p`` degrees of
        freedom; the bounds are Student-t quantiles exponentiated back to loss. With no residual degrees of
        freedom the interval is unbounded: ``(0, inf)``."""
        if not 0 < level < 1:
            raise ValueError(f"`level` must be in (0, 1), got {level!r}")
        d = np.atleast_1d(np.asarray(sizes, dtype=float))
        centre = np.log(self.predict(d))
        if self._dof <= 0:
            lo, hi = np.zeros_like(centre), np.full_like(centre, np.inf)
        else:
            _, jac = _model(self._theta[None], _safe_log(d)[None], d[None] > 0)
            g = jac[0][:, self._free]
            var = np.einsum("ni,ij,nj->n", g, self._cov, g) + self._sigma2
            half = stdtrit(self._dof, 0.5 + level / 2) * np.sqrt(np.maximum(var, 0.0))
            lo, hi = np.exp(centre - half), np.exp(centre + half)
        if np.ndim(sizes) == 0:
            return lo[0], hi[0]
        return lo, hi


def fit_law(
    sizes: np.ndarray | Sequence[float],
    losses: np.ndarray | Sequence[float],
    law: Law = "rectified",
    *,
    free_alpha: bool = False,
    huber_delta: float = DEFAULT_HUBER_DELTA,
    max_iter: int = 1000,
) -> FitResult:
    """Fit one scaling law to test losses measured after fine-tuning on ``sizes`` examples.

    Args:
        sizes: subset sizes, distinct and non-negative. ``0`` (the zero-shot point) is allowed for
            the rectified law only: the vanilla law is infinite there.
        losses: test losses at those sizes, finite and positive.
        law: ``"rectified"`` or ``"vanilla"``.
        free_alpha: fit the exponent α too instead of fixing it at 1.
        huber_delta: Huber threshold on log-loss residuals (default 0.1: quadratic for ordinary
            run-to-run noise, linear for a broken run; the paper's 1e-3 makes the fit nearly L1).
        max_iter: Levenberg–Marquardt iterations per start.

    Returns:
        A frozen :class:`FitResult`. The fit is deterministic: the optimiser starts from a
        fixed grid, so no seed is involved.

    Raises:
        ValueError: mismatched lengths, too few points, negative, duplicate or (vanilla) zero
            sizes, non-finite or non-positive losses."""
    s, y = _validate_curve(sizes, losses, law, free_alpha)
    return fit_laws(s, y, law, free_alpha=free_alpha, huber_delta=huber_delta, max_iter=max_iter)[0]


def fit_laws(
    sizes: np.ndarray,
    losses: np.ndarray,
    law: Law = "rectified",
    *,
    free_alpha: bool = False,
    huber_delta: float = DEFAULT_HUBER_DELTA,
    max_iter: int = 1000,
    names: Sequence[str] | None = None,
) -> list[FitResult]:
    """Fit many curves at once (vectorised): the fast path behind selection and evaluation.

    Args:
        sizes: ``(n_points,)`` shared sizes or ``(n_curves, n_points)``.
        losses: ``(n_curves, n_points)``; ``NaN`` marks a missing point, which is ignored.
        law, free_alpha, huber_delta, max_iter: as in :func:`fit_law`.
        names: curve names, used in the convergence warning.

    Returns:
        One :class:`FitResult` per curve, in order. A curve that does not converge is flagged and
        one :class:`FitConvergenceWarning` names all such curves."""
    _check_law(law)
    y = np.atleast_2d(np.asarray(losses, dtype=float))
    s = np.broadcast_to(np.asarray(sizes, dtype=float), y.shape)
    mask = np.isfinite(y)
    for i in range(y.shape[0]):
        _validate_curve(
            s[i][mask[i]], y[i][mask[i]], law, free_alpha, name=None if names is None else names[i]
        )
    free = np.array([True, law == "rectified", True, True, free_alpha])
    theta, obj, reason, iters = _multistart(s, y, mask, free, huber_delta, max_iter)
    results = [
        _result(law, s[i], y[i], mask[i], theta[i], free, obj[i], reason[i], iters[i])
        for i in range(y.shape[0])
    ]
    bad = [names[i] if names is not None else str(i) for i, f in enumerate(results) if not f.converged]
    if bad:
        warnings.warn(
            f"{len(bad)} of {len(results)} {law}-law fits did not converge within {max_iter} "
            f"iterations ({', '.join(bad)}); their results are flagged `converged=False`. "
            "Check those curves for outliers or allow more iterations (`max_iter=` in Python, "
            "`--max-iter` on `rectlaw fit` and `rectlaw evaluate`).",
            FitConvergenceWarning,
            stacklevel=1,
        )
    return results


def fit_rows(
    sizes: np.ndarray,
    losses: np.ndarray,
    law: Law = "rectified",
    zero_shot: np.ndarray | Sequence[float] | None = None,
    *,
    names: Sequence[str] | None = None,
    **fit_kw,
) -> tuple[list[FitResult | None], np.ndarray, int]:
    """:func:`fit_laws` on the rows of a table with missing cells, through the zero-shot point.

    Args:
        sizes: ``(n_points,)`` sizes shared by the rows.
        losses, law, names, fit_kw: as in :func:`fit_laws`.
        zero_shot: one loss per row, prepended as size 0 (``NaN``: none), or ``None``.

    Returns:
        The fits (``None`` for a row with fewer finite points than the law has parameters), each
        row's count of finite points and the count the law needs."""
    y = np.atleast_2d(np.asarray(losses, dtype=float))
    s = np.asarray(sizes, dtype=float)
    if zero_shot is not None:
        s, y = np.concatenate([[0.0], s]), np.column_stack([zero_shot, y])
    need = num_params(law, fit_kw.get("free_alpha", False))
    counts = np.isfinite(y).sum(axis=1)
    ok = np.flatnonzero(counts >= need)
    fits: list[FitResult | None] = [None] * y.shape[0]
    if ok.size:
        row_names = None if names is None else [names[i] for i in ok]
        for i, f in zip(ok, fit_laws(s, y[ok], law, names=row_names, **fit_kw)):
            fits[i] = f
    return fits, counts, need


def _check_law(law: str) -> None:
    if law not in LAWS:
        raise ValueError(f"`law` should be one of {LAWS}, got {law!r}")


def _validate_curve(sizes, losses, law, free_alpha, name=None) -> tuple[np.ndarray, np.ndarray]:
    _check_law(law)
    where = f" for {name!r}" if name else ""
    s = np.asarray(sizes, dtype=float).ravel()
    y = np.asarray(losses, dtype=float).ravel()
    if s.shape != y.shape:
        raise ValueError(f"`sizes` and `losses` must have the same length{where}, got {s.size} and {y.size}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError(
            f"losses must be finite and positive{where}, got {y.tolist()}; "
            "drop failed runs (NaN/inf) before fitting"
        )
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"sizes must be finite and non-negative{where}, got {s.tolist()}")
    if np.unique(s).size != s.size:
        raise ValueError(
            f"sizes must be distinct{where}, got {s.tolist()}; average repeated runs at the same size first"
        )
    if law == "vanilla" and np.any(s == 0):
        raise ValueError(
            f"the vanilla law is infinite at size 0{where}: drop the zero-shot point or use law='rectified'"
        )
    p = num_params(law, free_alpha)
    if s.size < p:
        raise ValueError(
            f"the {law} law has {p} parameters but only {s.size} points were given"
            f"{where}; measure at least {p} subset sizes"
        )
    return s, y


def _result(law, s, y, mask, theta, free, obj, reason, iters) -> FitResult:
    s_fit, y_fit = s[mask], y[mask]
    logd, pos = _safe_log(s_fit)[None], (s_fit > 0)[None]
    pred, jac = _model(theta[None], logd, pos)
    r = pred[0] - np.log(y_fit)
    pinned = free & (
        np.isclose(theta, _LOWER, rtol=0, atol=1e-6) | np.isclose(theta, _UPPER, rtol=0, atol=1e-6)
    )
    free = free & ~pinned
    p = int(free.sum())
    dof = r.size - p
    sigma2 = float(r @ r / dof) if dof > 0 else float("inf")
    jf = jac[0][:, free]
    cov = sigma2 * np.linalg.pinv(jf.T @ jf) if dof > 0 else np.full((p, p), np.inf)
    return FitResult(
        law=law,
        B=float(np.exp(theta[_B])),
        pre_learned_size=float(np.exp(theta[_DL])) if free[_DL] else 0.0,
        beta=float(theta[_BETA]),
        E=float(np.exp(theta[_E])),
        alpha=float(theta[_ALPHA]),
        sizes=s_fit.copy(),
        losses=y_fit.copy(),
        rmse_log=float(np.sqrt(np.mean(r * r))),
        objective=float(obj),
        converged=bool(reason in (1, 2, 3)),
        message=_REASONS[int(reason)],
        iterations=int(iters),
        at_bound=tuple(name for name, pin in zip(_NAMES, pinned) if pin),
        _theta=theta.copy(),
        _free=free.copy(),
        _cov=cov,
        _sigma2=sigma2,
        _dof=dof,
    )
