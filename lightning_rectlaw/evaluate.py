"""The paper's benchmark protocol: score selectors by PearCorr and RelAcc at several budgets.

Pure numpy/scipy: no torch, Lightning or Hydra import here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightning_rectlaw.metrics import pearcorr, relacc
from lightning_rectlaw.selection import METHODS, select
from lightning_rectlaw.table import LossTable, TableError

__all__ = ["EVAL_METHODS", "EVAL_RATIOS", "EvalRow", "evaluate"]

EVAL_RATIOS: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
EVAL_METHODS: tuple[str, ...] = (
    "pooled",
    "ats",
    "zeroshot",
    "subtuning",
    "modelsize",
    "ourfit",
    "vanillafit",
)


@dataclass(frozen=True)
class EvalRow:
    """One cell of the paper's Tables 1/2: ``value`` in percent, budget = target / ``ratio``.

    ``metric`` is ``PearCorr``, ``RelAcc`` or (with ``compute=True``) ``Compute``: the
    fine-tuning examples the method's nested runs need, as a percentage of fine-tuning every
    candidate once on the full ``target`` set.
    """

    method: str
    ratio: int
    metric: str
    value: float


def evaluate(
    table: LossTable,
    methods: Sequence[str] = EVAL_METHODS,
    ratios: Sequence[int] = EVAL_RATIOS,
    target: float | None = None,
    compute: bool = False,
    **options,
) -> list[EvalRow]:
    """PearCorr and RelAcc of each method at each budget ratio, against true losses at ``target``.

    Candidates without a loss at ``target`` are left out (with a warning); a candidate a method
    cannot rank is left out of that method's PearCorr and cannot be chosen.

    Raises:
        TableError: ``target`` is not a column of the table, or a budget falls outside it.
        ValueError: an unknown method.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    target = table.max_size if target is None else float(target)
    truth_all = table.column(target)
    have = np.isfinite(truth_all)
    if not have.any():
        raise TableError(f"no candidate has a loss at the target size {target:g}")
    if not have.all():
        missing = [n for n, h in zip(table.names, have) if not h]
        warnings.warn(f"left out of the evaluation, no loss at target {target:g}: {missing}", stacklevel=2)
        table = table.subset([n for n, h in zip(table.names, have) if h])
    truth = table.column(target)
    rows = []
    for method in methods:
        for r in ratios:
            sel = select(table, method, budget=target / r, target=target, **options)
            scores = sel.scores_for(table.names)
            if method == "modelsize":
                scores = -scores  # the paper correlates log parameter count itself
            if not sel.ranking:
                reasons = sorted(set(sel.unrankable.values()))
                warnings.warn(
                    f"{method} at 1/{r}: no candidate is rankable ({'; '.join(reasons)})", stacklevel=2
                )
                chosen = np.nan
            else:
                chosen = truth[table.names.index(sel.best)]
            rows.append(EvalRow(method, int(r), "PearCorr", pearcorr(scores, truth)))
            rows.append(EvalRow(method, int(r), "RelAcc", relacc(chosen, truth)))
            if compute:
                rows.append(EvalRow(method, int(r), "Compute", 100 * sel.examples / (len(truth) * target)))
    return rows
