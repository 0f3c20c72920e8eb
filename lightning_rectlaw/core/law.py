"""Fine-tuning scaling laws: the rectified law and the vanilla law, fitted in log space.

The rectified law of Lin et al. (ICML 2024) is

.. math::
    L(D) = \\left(\\frac{B}{D_l + D^\\beta} + E\\right)^\\alpha

where :math:`D_l` is the *pre-learned data size*; the vanilla law is the same with :math:`D_l = 0`.
Both are fitted by minimising a Huber loss on the residuals of :math:`\\log L`, the paper's
objective, with :math:`\\alpha = 1` by default (the paper's 4-parameter fits).

Pure numpy/scipy: no torch, Lightning or Hydra import here.

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
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import stdtrit

__all__ = [
    "FitConvergenceWarning",
    "FitResult",
    "LAWS",
    "fit_available",
    "fit_law",
    "fit_laws",
    "law_value",
    "num_params",
]

Law = Literal["rectified", "vanilla"]
LAWS: tuple[str, ...] = ("rectified", "vanilla")
DEFAULT_HUBER_DELTA = 0.1

# Parameter vector layout used by the optimiser: log B, log D_l, beta, log E, alpha.
_B, _DL, _BETA, _E, _ALPHA = range(5)
# Box bounds on the raw parameters keep exp() finite; beta beyond 3 is not a fine-tuning curve.
_LOWER = np.array([-300.0, -300.0, 1e-3, np.log(1e-8), 0.05])
_UPPER = np.array([300.0, 300.0, 3.0, 50.0, 20.0])
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
            the curve shows no floor). They are held fixed, not estimated, in :meth:`interval`.
    """

    law: str
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
        return {
            "B": self.B,
            "pre_learned_size": self.pre_learned_size,
            "beta": self.beta,
            "E": self.E,
            "alpha": self.alpha,
        }

    def predict(self, sizes: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Predicted test loss after fine-tuning on ``sizes`` examples."""
        return law_value(sizes, self.B, self.beta, self.E, self.pre_learned_size, self.alpha)

    def interval(
        self, sizes: np.ndarray | Sequence[float] | float, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prediction interval for the loss of a new fine-tuning run at ``sizes``.

        Computed by linearisation (the delta method, i.e. a Laplace approximation around the
        optimum): in log space the prediction variance is
        :math:`g^\\top \\Sigma g + \\hat\\sigma^2`, where :math:`g` is the gradient of
        :math:`\\log L(D)` in the free parameters, :math:`\\Sigma = \\hat\\sigma^2 (J^\\top J)^+` the
        parameter covariance and :math:`\\hat\\sigma^2` the residual variance with ``n - p``
        degrees of freedom; the bounds are Student-t quantiles exponentiated back to loss.
        With no residual degrees of freedom the interval is unbounded: ``(0, inf)``.
        """
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
        law: ``"rectified"`` (default) or ``"vanilla"``.
        free_alpha: fit the exponent α too instead of fixing it at 1.
        huber_delta: Huber threshold on log-loss residuals (default 0.1: quadratic for ordinary
            run-to-run noise, linear for a broken run; the paper's 1e-3 makes the fit nearly L1).
        max_iter: Levenberg–Marquardt iterations per start.

    Returns:
        A frozen :class:`FitResult`. The fit is deterministic: the optimiser starts from a
        fixed grid, so no seed is involved.

    Raises:
        ValueError: mismatched lengths, too few points, negative, duplicate or (vanilla) zero
            sizes, non-finite or non-positive losses.
    """
    s, y = _validate_curve(sizes, losses, law, free_alpha)
    return _fit_validated(s[None], y[None], law, free_alpha, huber_delta, max_iter, None)[0]


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
        one :class:`FitConvergenceWarning` names all such curves.
    """
    _check_law(law)
    y = np.atleast_2d(np.asarray(losses, dtype=float))
    s = np.broadcast_to(np.asarray(sizes, dtype=float), y.shape)
    mask = np.isfinite(y)
    for i in range(y.shape[0]):
        _validate_curve(
            s[i][mask[i]], y[i][mask[i]], law, free_alpha, name=None if names is None else names[i]
        )
    return _fit_validated(s, y, law, free_alpha, huber_delta, max_iter, names)


def _fit_validated(s, y, law, free_alpha, huber_delta, max_iter, names) -> list[FitResult]:
    """:func:`fit_laws` on curves already validated."""
    mask = np.isfinite(y)
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
            "`--max-iter` on `rectlaw fit`).",
            FitConvergenceWarning,
            stacklevel=2,
        )
    return results


def fit_available(
    sizes: np.ndarray,
    losses: np.ndarray,
    law: Law = "rectified",
    *,
    names: Sequence[str] | None = None,
    **fit_kw,
) -> list[FitResult | None]:
    """:func:`fit_laws` on the rows of a table with missing cells: ``None`` for a row with fewer
    finite points than the law has parameters, a :class:`FitResult` for every other row."""
    y = np.atleast_2d(np.asarray(losses, dtype=float))
    need = num_params(law, fit_kw.get("free_alpha", False))
    ok = np.flatnonzero(np.isfinite(y).sum(axis=1) >= need)
    out: list[FitResult | None] = [None] * y.shape[0]
    if ok.size:
        row_names = None if names is None else [names[i] for i in ok]
        s = np.asarray(sizes, dtype=float)
        s = s[ok] if s.ndim == 2 else s
        for i, f in zip(ok, fit_laws(s, y[ok], law, names=row_names, **fit_kw)):
            out[i] = f
    return out


# --- validation -------------------------------------------------------------------------------


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


# --- model and optimiser ----------------------------------------------------------------------


def _safe_log(d: np.ndarray) -> np.ndarray:
    return np.log(np.where(d > 0, d, 1.0))


def _model(theta: np.ndarray, logd: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-loss prediction ``(P, N)`` and its Jacobian ``(P, N, 5)`` in the raw parameters."""
    b, d, beta, e, alpha = (theta[:, i : i + 1] for i in range(5))
    u = np.where(pos, np.exp(np.minimum(beta * logd, 700.0)), 0.0)
    ed = np.exp(d)
    den = ed + u
    s = np.exp(b) / den
    ee = np.exp(e)
    m = s + ee
    log_m = np.log(m)
    a_over_m = alpha / m
    jac = np.empty((*m.shape, 5))
    jac[..., _B] = a_over_m * s
    jac[..., _DL] = -jac[..., _B] * ed / den
    jac[..., _BETA] = -jac[..., _B] * u * logd / den
    jac[..., _E] = a_over_m * ee
    jac[..., _ALPHA] = log_m
    return alpha * log_m, jac


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _levenberg_marquardt(theta, logd, pos, y, w, free, delta, max_iter, ftol=1e-9):
    """Batched Levenberg–Marquardt on the Huber objective (IRLS weights).

    Only still-running problems are computed each iteration. A problem stops when an accepted
    step improves its objective by less than ``ftol`` (relative), when no step of any damping
    improves it (it sits at a minimum), or when its objective is zero (an exact fit). Returns
    theta, objective, the stop reason per problem (an index of :data:`_REASONS`; 0: it ran out
    of iterations) and the iterations each used.
    """
    theta = theta.copy()
    n_free = int(free.sum())
    eye = np.eye(n_free)
    lam = np.full(theta.shape[0], 1e-3)
    pred, jac = _model(theta, logd, pos)
    obj = np.sum(w * _huber(pred - y, delta), axis=1)
    reason = np.where(np.isfinite(obj), 0, 4)
    iters = np.zeros(theta.shape[0], dtype=int)
    for _ in range(max_iter):
        act = np.flatnonzero(reason == 0)
        if act.size == 0:
            break
        iters[act] += 1
        r = pred[act] - y[act]
        omega = w[act] * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        jf = jac[act][:, :, free]
        hess = np.einsum("pni,pn,pnj->pij", jf, omega, jf)
        grad = np.einsum("pni,pn->pi", jf, omega * r)
        damped = hess + lam[act, None, None] * (hess * eye + 1e-12 * eye)
        step = np.linalg.solve(damped, -grad[..., None])[..., 0]
        trial = theta[act]
        trial[:, free] += step
        trial = np.where(np.isfinite(trial), np.clip(trial, _LOWER, _UPPER), trial)
        t_pred, t_jac = _model(trial, logd[act], pos[act])
        t_obj = np.sum(w[act] * _huber(t_pred - y[act], delta), axis=1)
        better = np.isfinite(t_obj) & (t_obj < obj[act])
        small = better & (obj[act] - t_obj <= ftol * (obj[act] + 1e-30))
        upd = act[better]
        theta[upd], pred[upd], jac[upd], obj[upd] = (
            trial[better],
            t_pred[better],
            t_jac[better],
            t_obj[better],
        )
        lam[act] = np.where(better, lam[act] / 3.0, lam[act] * 4.0)
        reason[act] = np.select([obj[act] <= 1e-30, small, lam[act] > 1e12], [3, 1, 2], 0)
    return theta, obj, reason, iters


def _grid_starts(s, y, mask, free, n_keep: int = 4) -> np.ndarray:
    """Starting points: a (beta, D_l) grid with B, E from weighted linear least squares.

    For fixed beta and D_l the law is linear in (B, E); weighting by 1/L makes the linear residual
    approximate the log residual, so each grid cell gets a near-optimal (B, E) in closed form. The
    ``n_keep`` best cells per curve seed the Levenberg–Marquardt polish.
    """
    betas = np.linspace(0.05, 1.6, 16)
    pos = s > 0
    smax = np.nanmax(np.where(mask & pos, s, np.nan), axis=1)
    if free[_DL]:
        # Transition size T where D^beta meets D_l, from well below to well above the data.
        rel = np.geomspace(1e-4, 10.0, 10)
    else:
        rel = np.array([0.0])
    P, N = y.shape
    logd = _safe_log(s)
    bb, rr = np.meshgrid(betas, rel, indexing="ij")
    bb, rr = bb.ravel(), rr.ravel()  # G cells
    t = rr[None, :] * smax[:, None]  # (P, G)
    dl = np.where(t > 0, np.power(np.maximum(t, 1e-300), bb[None, :]), 0.0)
    u = np.where(pos[:, None, :], np.exp(np.minimum(bb[None, :, None] * logd[:, None, :], 700)), 0.0)
    g = 1.0 / np.maximum(dl[:, :, None] + u, 1e-300)  # (P, G, N)
    yy = np.where(mask, y, 1.0)[:, None, :]
    wt = np.where(mask, 1.0, 0.0)[:, None, :] / yy**2
    # Weighted normal equations for L = B g + E.
    sgg, sg1, s11 = (wt * g * g).sum(-1), (wt * g).sum(-1), wt.sum(-1)
    sgy, s1y = (wt * g * yy).sum(-1), (wt * yy).sum(-1)
    det = sgg * s11 - sg1**2
    with np.errstate(divide="ignore", invalid="ignore"):
        B = (sgy * s11 - sg1 * s1y) / det
        E = (sgg * s1y - sg1 * sgy) / det
    ymin = np.nanmin(np.where(mask, y, np.nan), axis=1)[:, None]
    bad_e = ~np.isfinite(E) | (E <= 0) | (E >= ymin)
    E = np.where(bad_e, 0.5 * ymin, E)
    B = np.where(bad_e | ~np.isfinite(B), (sgy - E * sg1) / np.maximum(sgg, 1e-300), B)
    B = np.maximum(B, 1e-12 * ymin)
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = np.log(B[..., None] * g + E[..., None]) - np.log(yy)
    obj = np.sum(np.where(mask[:, None, :], resid, 0.0) ** 2, axis=-1)
    obj = np.where(np.isfinite(obj), obj, np.inf)
    theta = np.zeros((P, bb.size, 5))
    theta[..., _B] = np.log(B)
    theta[..., _DL] = np.where(dl > 0, np.log(np.maximum(dl, 1e-300)), -np.inf)
    theta[..., _BETA] = bb[None, :]
    theta[..., _E] = np.log(E)
    theta[..., _ALPHA] = 1.0
    best = np.argsort(obj, axis=1)[:, :n_keep]
    return np.take_along_axis(theta, best[..., None], axis=1)  # (P, n_keep, 5)


def _multistart(s, y, mask, free, delta, max_iter):
    P, N = y.shape
    starts = _grid_starts(s, y, mask, free)
    K = starts.shape[1]
    flat = starts.reshape(P * K, 5)
    rep = lambda a: np.repeat(a, K, axis=0)  # noqa: E731
    logd, pos = rep(_safe_log(s)), rep(s > 0)
    ly = rep(np.where(mask, np.log(np.where(mask, y, 1.0)), 0.0))
    w = rep(mask.astype(float))
    fit_free = free.copy()
    fit_free[_ALPHA] = False
    theta, obj, reason, iters = _levenberg_marquardt(flat, logd, pos, ly, w, fit_free, delta, max_iter)
    if free[_ALPHA]:
        theta, obj, reason, more = _levenberg_marquardt(theta, logd, pos, ly, w, free, delta, max_iter)
        iters = iters + more
    obj = np.where(np.isfinite(obj), obj, np.inf).reshape(P, K)
    best = np.argmin(obj, axis=1)
    idx = np.arange(P) * K + best
    return theta[idx], obj[np.arange(P), best], reason[idx], iters[idx]


def _result(law, s, y, mask, theta, free, obj, reason, iters) -> FitResult:
    s_fit, y_fit = s[mask], y[mask]
    logd, pos = _safe_log(s_fit)[None], (s_fit > 0)[None]
    pred, jac = _model(theta[None], logd, pos)
    r = pred[0] - np.log(y_fit)
    # A parameter pinned at its bound is not estimated: it is held fixed in the interval.
    pinned = free & (
        np.isclose(theta, _LOWER, rtol=0, atol=1e-6) | np.isclose(theta, _UPPER, rtol=0, atol=1e-6)
    )
    free = free & ~pinned
    n, p = r.size, int(free.sum())
    dof = n - p
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
