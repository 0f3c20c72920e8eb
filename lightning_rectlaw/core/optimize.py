"""The optimiser behind the law fits: batched Levenberg-Marquardt on a Huber objective in log
space, from a grid of starts, with box bounds on the raw parameters.

Pure numpy. The names are private to :mod:`~lightning_rectlaw.core.law`, their one caller."""

from __future__ import annotations

import numpy as np

# Parameter vector layout used by the optimiser: log B, log D_l, beta, log E, alpha.
_B, _DL, _BETA, _E, _ALPHA = range(5)
# Box bounds on the raw parameters keep exp() finite; beta beyond 3 is not a fine-tuning curve.
_LOWER = np.array([-300.0, -300.0, 1e-3, np.log(1e-8), 0.05])
_UPPER = np.array([300.0, 300.0, 3.0, 50.0, 20.0])


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
    """Batched Levenberg–Marquardt on the Huber objective (IRLS weights). Only still-running problems are
    computed each iteration. A problem stops when an accepted step improves its objective by less than
    ``ftol`` (relative), when no step of any damping improves it (it sits at a minimum), or when its objective
    is zero (an exact fit). Returns theta, objective, the stop reason per problem (an index of
    :data:`_REASONS`; 0: it ran out of iterations) and the iterations each used."""
    theta = theta.copy()
    eye = np.eye(int(free.sum()))
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
        for current, tried in ((theta, trial), (pred, t_pred), (jac, t_jac), (obj, t_obj)):
            current[upd] = tried[better]
        lam[act] = np.where(better, lam[act] / 3.0, lam[act] * 4.0)
        reason[act] = np.select([obj[act] <= 1e-30, small, lam[act] > 1e12], [3, 1, 2], 0)
    return theta, obj, reason, iters


def _grid_starts(s, y, mask, free, n_keep: int = 4) -> np.ndarray:
    """Starting points: a (beta, D_l) grid with B, E from weighted linear least squares. For fixed beta and
    D_l the law is linear in (B, E); weighting by 1/L makes the linear residual approximate the log residual,
    so each grid cell gets a near-optimal (B, E) in closed form. The ``n_keep`` best cells per curve seed the
    Levenberg–Marquardt polish."""
    betas = np.linspace(0.05, 1.6, 16)
    pos = s > 0
    smax = np.nanmax(np.where(mask & pos, s, np.nan), axis=1)
    # Transition size T where D^beta meets D_l, from well below to well above the data.
    rel = np.geomspace(1e-4, 10.0, 10) if free[_DL] else np.array([0.0])
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
    theta = np.zeros((y.shape[0], bb.size, 5))
    theta[..., _B] = np.log(B)
    theta[..., _DL] = np.where(dl > 0, np.log(np.maximum(dl, 1e-300)), -np.inf)
    theta[..., _BETA] = bb[None, :]
    theta[..., _E] = np.log(E)
    theta[..., _ALPHA] = 1.0
    best = np.argsort(obj, axis=1)[:, :n_keep]
    return np.take_along_axis(theta, best[..., None], axis=1)  # (P, n_keep, 5)


def _multistart(s, y, mask, free, delta, max_iter):
    P = y.shape[0]
    starts = _grid_starts(s, y, mask, free)
    K = starts.shape[1]
    flat = starts.reshape(P * K, 5)
    rep = lambda a: np.repeat(a, K, axis=0)  # noqa: E731
    logd, pos = rep(_safe_log(s)), rep(s > 0)
    ly = rep(np.where(mask, np.log(np.where(mask, y, 1.0)), 0.0))
    w = rep(mask.astype(float))
    first = free & (np.arange(5) != _ALPHA)  # alpha held at 1, then freed where it is fitted
    theta, obj, reason, iters = _levenberg_marquardt(flat, logd, pos, ly, w, first, delta, max_iter)
    if free[_ALPHA]:
        theta, obj, reason, more = _levenberg_marquardt(theta, logd, pos, ly, w, free, delta, max_iter)
        iters = iters + more
    obj = np.where(np.isfinite(obj), obj, np.inf).reshape(P, K)
    best = np.argmin(obj, axis=1)
    idx = np.arange(P) * K + best
    return theta[idx], obj[np.arange(P), best], reason[idx], iters[idx]
