"""One candidate's measured curve → its prediction, status, outliers and the curves to draw.

The step the Lightning callback runs after its subset runs, as a pure function: testable without
a Trainer, and the one place that decides what a single-candidate result says."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np

from lightning_rectlaw.core.law import fit_rows
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection.registry import DEFAULT_METHOD, select
from lightning_rectlaw.selection.scores import bounded, prediction_curve
from lightning_rectlaw.selection.status import Status


@dataclass(frozen=True)
class CurvePrediction:
    """What a method predicts from one candidate's curve.

    Attributes:
        status: ``Status.OK``, or why there is no prediction.
        predicted_loss, interval: the prediction at the target and its interval (``None`` when
            there is none, or the interval is unbounded).
        outliers: runs left out as diverged or off the curve, size → why.
        curve: the predicting method's own curve, ``{"sizes": [...], "losses": [...]}`` from the
            smallest point it used to the target, so a plot's prediction lies on it (``None`` for
            methods without a curve).
        law, vanilla_law: rectified and vanilla laws fitted to the clean points, for reference
            (``None`` with too few points); they are not the prediction unless the method fits them."""

    status: str
    _: KW_ONLY
    predicted_loss: float | None = None
    interval: tuple[float, float] | None = None
    outliers: dict[float, str] = field(default_factory=dict)
    curve: dict[str, list[float]] | None = None
    law: dict[str, float] | None = None
    vanilla_law: dict[str, float] | None = None


def predict_curve(
    sizes,
    losses,
    target: float,
    zero_shot: float | None = None,
    method: str = DEFAULT_METHOD,
    level: float = 0.95,
    **options: Any,
) -> CurvePrediction:
    """Predict the loss at ``target`` from one candidate's ``(sizes, losses)`` with ``method``. Points may
    come in any order. Needs at least 2 points; a method that cannot rank the curve (too few clean points, for
    instance) gives a status that says why, not an exception."""
    sizes = np.asarray(sizes, dtype=float)
    losses = np.asarray(losses, dtype=float)
    order = np.argsort(sizes)
    sizes, losses = sizes[order], losses[order]
    if sizes.size < 2:
        return CurvePrediction(f"only {sizes.size} finished subset(s); need at least 2")
    zero = None if zero_shot is None else np.array([zero_shot])
    table = LossTable(("candidate",), sizes, losses[None], zero_shot=zero)
    try:
        sel = select(table, method, budget=float(sizes[-1]), target=target, level=level, **options)
    except ValueError as err:
        return CurvePrediction(f"no prediction: {err}")
    c = sel.candidates[0]
    keep = np.array([float(s) not in c.outliers for s in sizes])
    law, vanilla = _side_fits(sizes[keep], losses[keep], zero_shot)
    if not c.rankable:
        return CurvePrediction(
            f"no prediction: {c.reason}", outliers=c.outliers, law=law, vanilla_law=vanilla
        )
    pred = c.predicted_loss if c.predicted_loss is not None else c.score
    interval = bounded(c.interval)
    return CurvePrediction(
        Status.OK,
        predicted_loss=float(pred),
        interval=None if interval is None else tuple(map(float, interval)),
        outliers=c.outliers,
        curve=prediction_curve(c.fit, c.sizes_used, target),
        law=law,
        vanilla_law=vanilla,
    )


def _side_fits(sizes, losses, zero_shot) -> tuple[dict | None, dict | None]:
    zero = [zero_shot] if zero_shot is not None and np.isfinite(zero_shot) else None
    (law,), _, _ = fit_rows(sizes, losses, zero_shot=zero)
    (vanilla,), _, _ = fit_rows(sizes, losses, "vanilla")
    return None if law is None else law.params, None if vanilla is None else vanilla.params
