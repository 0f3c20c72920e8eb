"""The least-squares line in log-log space that AtS fits to a curve's power phase."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import stdtrit


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
        """Student-t prediction interval of ordinary least squares, in log space, exponentiated;
        unbounded ``(0, inf)`` with only two points (no residual degrees of freedom)."""
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
    x, y = np.log(sizes), np.log(losses)  # on the inputs as given: their dtype sets the fit's precision
    slope, intercept = np.polyfit(x, y, 1)
    rmse = float(np.sqrt(np.mean((y - (intercept + slope * x)) ** 2)))
    sizes, losses = np.asarray(sizes, dtype=float), np.asarray(losses, dtype=float)
    return LineFit(float(slope), float(intercept), sizes, losses, rmse)
