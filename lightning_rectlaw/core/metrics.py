"""Selection quality metrics: the paper's PearCorr and RelAcc, and user-level ones."""

from __future__ import annotations

import numpy as np


def pearcorr(scores: np.ndarray, true_losses: np.ndarray) -> float:
    """Pearson correlation (in %) between selector scores and true target losses.

    .. math::
        \\text{PearCorr} = 100 \\cdot \\frac{\\operatorname{cov}(s, L)}{\\sigma_s \\sigma_L}

    Example:
        >>> round(pearcorr(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])), 1)
        99.3
    """
    s, t = np.asarray(scores, dtype=float), np.asarray(true_losses, dtype=float)
    if s.shape != t.shape:
        raise ValueError(f"scores and true losses must have the same length, got {s.size} and {t.size}")
    keep = np.isfinite(s) & np.isfinite(t)
    s, t = s[keep], t[keep]
    if s.size < 2 or np.std(s) == 0 or np.std(t) == 0:
        return float("nan")
    return float(100.0 * np.corrcoef(s, t)[0, 1])


def relacc(chosen_loss: float, true_losses: np.ndarray) -> float:
    """Relative accuracy (in %) of a choice: ``(worst - chosen) / (worst - best)``.

    .. math::
        \\text{RelAcc} = 100 \\cdot \\frac{L_{\\max} - L_{\\text{chosen}}}{L_{\\max} - L_{\\min}}

    Example:
        >>> relacc(1.5, np.array([1.0, 1.5, 3.0]))
        75.0
    """
    t = np.asarray(true_losses, dtype=float)
    t = t[np.isfinite(t)]
    best, worst = t.min(), t.max()
    if worst == best:
        return 100.0
    return float(100.0 * (worst - chosen_loss) / (worst - best))


def pool_choices(scores: np.ndarray, pools: np.ndarray) -> np.ndarray:
    """Each pool's choice: the candidate with the lowest score (pools × members, indices). An unrankable
    candidate (``nan`` score) is never chosen; a pool with none rankable gets its first, a random guess."""
    s = np.where(np.isfinite(scores), scores, np.inf)[pools]
    return pools[np.arange(len(pools)), np.argmin(s, axis=1)]


def brier(prob_best: np.ndarray, true_losses: np.ndarray) -> float:
    """Brier score of the probabilities of being best: :math:`\\sum_i (p_i - o_i)^2`.

    :math:`o_i` is 1 for the candidate with the lowest true loss, 0 for the others. 0 is a certain right
    answer, 2 a certain wrong one, and the uniform guess over n candidates scores :math:`1 - 1/n`.

    Example:
        >>> round(brier(np.array([0.5, 0.25, 0.25]), np.array([1.0, 2.0, 3.0])), 3)
        0.375
    """
    p = np.asarray(prob_best, dtype=float)
    outcome = np.zeros_like(p)
    outcome[int(np.nanargmin(true_losses))] = 1.0
    return float(np.sum((np.nan_to_num(p) - outcome) ** 2))


def coverage(low: np.ndarray, high: np.ndarray, true_losses: np.ndarray) -> float:
    """Percentage of true losses inside ``[low, high]`` (unbounded or missing intervals left out)."""
    low, high, t = (np.asarray(a, dtype=float) for a in (low, high, true_losses))
    ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(t)
    if not ok.any():
        return float("nan")
    return float(100 * np.mean((low[ok] <= t[ok]) & (t[ok] <= high[ok])))
