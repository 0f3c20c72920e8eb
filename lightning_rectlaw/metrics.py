"""Selection quality metrics of the paper: PearCorr and RelAcc (both in percent).

Pure numpy: no torch, Lightning or Hydra import here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pearcorr", "relacc"]


def pearcorr(scores: np.ndarray, true_losses: np.ndarray) -> float:
    """Pearson correlation (in %) between selector scores and true target losses.

    .. math::
        \\text{PearCorr} = 100 \\cdot \\frac{\\operatorname{cov}(s, L)}{\\sigma_s \\sigma_L}

    Example:
        >>> round(pearcorr(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])), 1)
        99.3
    """
    s, t = _pair(scores, true_losses)
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


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"scores and true losses must have the same length, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]
