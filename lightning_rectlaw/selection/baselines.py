"""The baselines and the other selectors: pooled, SubTuning, ZeroShot, ModelSize, and the law
fits OurFit (rectified) and VanillaFit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lightning_rectlaw.core.law import fit_rows
from lightning_rectlaw.core.pooled import fit_pooled
from lightning_rectlaw.selection.scores import CandidateScore
from lightning_rectlaw.selection.scores import in_budget as _in_budget

Selector = Callable[..., list[CandidateScore]]


def _pooled(table, budget, target, level, *, k: int, holdouts: int, prob_seed: int):
    sizes, losses = _in_budget(table, budget)
    fit = fit_pooled(sizes, losses, k=k, holdouts=holdouts)
    probs = fit.prob_best(target, seed=prob_seed)
    bounded = fit.holdouts > 0
    quant = fit.quantiles(target, (0.5, 0.5 - level / 2, 0.5 + level / 2))
    out = []
    for name, curve, p, (pred, lo, hi) in zip(table.names, fit.curves, probs, quant.tolist()):
        if curve is None:
            out.append(CandidateScore(name, score=np.nan, reason="`pooled` needs 2 points within the budget"))
            continue
        run = curve.sizes[-(k + fit.holdouts) :]  # the local line plus the backtest's hold-outs
        out.append(
            CandidateScore(
                name,
                score=pred,
                predicted_loss=pred,
                interval=(lo, hi) if bounded else (0.0, float("inf")),
                sizes_used=tuple(curve.sizes[-k:].tolist()),
                fit=curve,
                prob_best=None if np.isnan(p) else float(p),
                sizes_run=tuple(run.tolist()),
            )
        )
    return out


def _subtuning(table, budget, target, level):
    sizes, losses = _in_budget(table, budget)
    size = float(sizes[-1])
    return [
        CandidateScore(name, score=np.nan, reason=f"no loss at the budget size {size:g}")
        if np.isnan(loss)
        else CandidateScore(name, score=float(loss), sizes_used=(size,))
        for name, loss in zip(table.names, losses[:, -1])
    ]


def _zeroshot(table, budget, target, level):
    if table.zero_shot is None:
        raise ValueError("`zeroshot` needs the zero-shot column '0' in the table")
    return [
        CandidateScore(name, score=float(z), sizes_used=(0.0,))
        if np.isfinite(z)
        else CandidateScore(name, score=np.nan, reason="no zero-shot loss")
        for name, z in zip(table.names, table.zero_shot)
    ]


def _modelsize(table, budget, target, level):
    if table.num_params is None:
        raise ValueError("`modelsize` needs the parameter-count column 'size' in the table")
    return [
        CandidateScore(name, score=-float(np.log(p)))
        if np.isfinite(p) and p > 0
        else CandidateScore(name, score=np.nan, reason="no parameter count")
        for name, p in zip(table.names, table.num_params)
    ]


def _law_scorer(law: str, with_zero_shot: bool) -> Selector:
    """A selector that fits ``law`` to each candidate's in-budget points (OurFit, VanillaFit)."""

    def scorer(table, budget, target, level, *, free_alpha: bool, huber_delta: float, max_iter: int):
        sizes, losses = _in_budget(table, budget)
        fit_kw = {"free_alpha": free_alpha, "huber_delta": huber_delta, "max_iter": max_iter}
        zero = table.zero_shot if with_zero_shot else None
        fits, counts, need = fit_rows(sizes, losses, law, zero, names=table.names, **fit_kw)
        out = []
        for name, f, count in zip(table.names, fits, counts):
            if f is None:
                reason = f"the {law} law needs {need} points within the budget, found {count}"
                out.append(CandidateScore(name, score=np.nan, reason=reason))
                continue
            out.append(CandidateScore.predicted(name, f, target, level, sizes_used=tuple(f.sizes.tolist())))
        return out

    return scorer


_ourfit = _law_scorer("rectified", with_zero_shot=True)
_vanillafit = _law_scorer("vanilla", with_zero_shot=False)
