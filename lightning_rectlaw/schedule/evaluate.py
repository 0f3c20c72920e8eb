"""Score selectors on a loss table: the paper's metrics, and what a user with a few candidates sees.

The paper's Tables 1/2 report PearCorr and RelAcc over all candidates. A user has a handful of
candidates and cares whether the tool picks the best of *those*, and how much loss a wrong pick
costs; and whether its probabilities and intervals can be believed. Metrics (``value`` column):

* ``PearCorr``, ``RelAcc``: the paper's, in percent (see :mod:`lightning_rectlaw.core.metrics`).
* ``HitRate``: over random pools of ``pool_size`` candidates (the same pools for every method), the percentage
  in which the method's first choice has the pool's lowest true target loss.
* ``Regret``: over the same pools, the mean excess true loss of the choice over the pool's best,
  in percent of the best's loss.
* ``Brier``: of P(best) over all candidates (:func:`~lightning_rectlaw.core.metrics.brier`); methods
  that report P(best).
* ``Coverage80``: percentage of candidates whose true target loss lies inside the method's 80%
  interval; methods that report intervals.
* ``Compute``: examples fine-tuned by the runs the method needs, in percent of fine-tuning every
  candidate once on the full target set.

``schedule="adaptive"`` replays the successive-elimination sweep
(:func:`~lightning_rectlaw.schedule.replay.simulate`) instead of running every candidate's whole
schedule: the choice is the best survivor, and ``Compute`` counts what the replay read. PearCorr uses each
candidate's prediction from its last rung; pools pick by the sweep's final order.

Pools are scored with the scores the method gave on the whole table, so a method whose
predictions share information across candidates (``pooled``, ``robust_ats``'s calibration) sees
the whole table's in-budget data, as it would with that many candidates."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightning_rectlaw.core.metrics import brier, coverage, pearcorr, pool_choices, relacc
from lightning_rectlaw.core.presentation.formatting import format_number
from lightning_rectlaw.core.table import LossTable, TableError
from lightning_rectlaw.schedule.replay import simulate
from lightning_rectlaw.schedule.rule import RuleSettings
from lightning_rectlaw.selection import METHODS, Selection, select

EVAL_RATIOS: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
EVAL_METHODS: tuple[str, ...] = tuple(METHODS)  # every registered selector
METRICS: tuple[str, ...] = ("PearCorr", "RelAcc", "HitRate", "Regret", "Brier", "Coverage80", "Compute")
DEFAULT_METRICS: tuple[str, ...] = ("PearCorr", "RelAcc")
#: Decimals a metric is written with (1 unless listed): Compute to two, so that a ratio of two
#: cells is exact to 1%.
DIGITS: dict[str, int] = {"Brier": 3, "Compute": 2}


@dataclass(frozen=True)
class EvalRow:
    """One cell: ``metric`` of ``method`` at budget = target / ``ratio`` (see the module docstring)."""

    method: str
    ratio: int
    metric: str
    value: float


class EvalRows(list):
    """The rows :func:`evaluate` returns (a list of :class:`EvalRow`), with a DataFrame view.
    ``ranked``: whether any method ranked any candidate at any budget (else every value is moot)."""

    ranked: bool = False

    def to_pandas(self, wide: bool = False):
        """Long format (``method, ratio, metric, value``), or ``wide=True``: one row per metric and
        method, one column per budget ratio (as ``rectlaw evaluate`` prints). Needs pandas."""
        from lightning_rectlaw.core.presentation.display import to_pandas

        frame = to_pandas([vars(r) for r in self])
        if wide and len(frame):
            frame = frame.pivot_table(index=["metric", "method"], columns="ratio", values="value", sort=False)
        return frame


def evaluate(
    table: LossTable,
    methods: Sequence[str] | None = None,
    ratios: Sequence[int] = EVAL_RATIOS,
    target: float | None = None,
    compute: bool = False,
    metrics: Sequence[str] | None = None,
    pool_size: int = 5,
    pools: int = 2000,
    seed: int = 0,
    schedule: str = "full",
    adaptive: RuleSettings | Mapping[str, Any] | None = None,
    **options,
) -> EvalRows:
    """Score each method at each budget ratio against the true losses at ``target``.

    Args:
        table: the losses, with the true ones at ``target``.
        methods, ratios: what to score; budget = ``target / ratio``. Default methods:
            :data:`EVAL_METHODS`, less those needing a column the table lacks (with a warning).
        target: the full size (default: the table's largest).
        compute: add ``Compute`` (kept for ``metrics=None`` callers).
        metrics: any of :data:`METRICS` (default ``PearCorr`` and ``RelAcc``).
        pool_size, pools, seed: the random pools of ``HitRate`` and ``Regret``.
        schedule: ``"full"`` (every candidate's whole schedule) or ``"adaptive"`` (successive
            elimination; ``adaptive`` holds its settings, a
            :class:`~lightning_rectlaw.schedule.rule.RuleSettings` or a dict of its fields).

    Candidates without a loss at ``target`` are left out (warned); one a method cannot rank is
    left out of its PearCorr and cannot be chosen.

    Raises:
        TableError: ``target`` is not a column of the table, or a budget falls outside it.
        ValueError: an unknown method or metric, a method needing a column the table lacks, or a
            pool size below 2. All before any method is scored."""
    methods = _checked_methods(table, methods, options)
    metrics = _checked_metrics(metrics, compute, schedule, pool_size, pools)
    target = table.max_size if target is None else float(target)
    table = _with_truth(table, target, ratios)
    truth = table.column(target)
    draws = _pools(len(truth), pool_size, pools, seed)
    rule = adaptive if isinstance(adaptive, RuleSettings) else RuleSettings(**(adaptive or {}))
    rows, ranked = [], False
    for method in methods:
        own = {k: v for k, v in options.items() if k in METHODS[method].defaults}  # e.g. max_iter: the fits
        for r in ratios:
            sel, picks = _selected(table, method, r, target, rule if schedule == "adaptive" else None, own)
            ranked = ranked or bool(sel.ranking)
            values = _metrics(
                sel, table, truth, sel.scores_for(table.names), draws, target, metrics, method, picks
            )
            rows += [EvalRow(method, int(r), m, v) for m, v in values.items()]
    out = EvalRows(rows)
    out.ranked = ranked
    return out


def _checked_methods(table: LossTable, methods: Sequence[str] | None, options: dict[str, Any]) -> list[str]:
    """The methods to score (see :func:`evaluate`), refused when unknown, lacking a column or taking
    none of ``options``."""
    if unknown := [m for m in methods or () if m not in METHODS]:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    asked = EVAL_METHODS if methods is None else methods
    lacking = {m: cols for m in asked if (cols := _missing_columns(table, m))}
    if lacking:
        what = ", ".join(f"{m} (column {' and '.join(cols)})" for m, cols in lacking.items())
        if methods is not None:
            raise ValueError(f"{table.source} has no column for {what}; leave those methods out")
        warnings.warn(f"skipped, {table.source} has no column for: {what}", stacklevel=3)
    chosen = [m for m in asked if m not in lacking]
    if unused := sorted(k for k in options if not any(k in METHODS[m].defaults for m in chosen)):
        raise ValueError(f"no method of {chosen} has the option(s) {unused}")
    return chosen


def _checked_metrics(metrics, compute: bool, schedule: str, pool_size: int, pools: int) -> list[str]:
    """The metrics to compute (``Compute`` added with ``compute``), refused when unknown, as are a
    schedule other than full or adaptive and pools of fewer than two candidates."""
    metrics = list(DEFAULT_METRICS if metrics is None else metrics)
    if compute and "Compute" not in metrics:
        metrics.append("Compute")
    if bad := [m for m in metrics if m not in METRICS]:
        raise ValueError(f"unknown metric(s) {bad}; choose from {list(METRICS)}")
    if schedule not in ("full", "adaptive"):
        raise ValueError(f"`schedule` should be 'full' or 'adaptive', got {schedule!r}")
    if pool_size < 2 or pools < 1:
        raise ValueError(f"`pool_size` must be at least 2 and `pools` at least 1, got {pool_size}, {pools}")
    return metrics


def _with_truth(table: LossTable, target: float, ratios: Sequence[int]) -> LossTable:
    """The candidates with a loss at ``target`` (the others left out with a warning), after
    checking that every budget ``target / ratio`` is within the table."""
    truth = table.column(target)
    if too_small := [int(r) for r in ratios if target / r < table.sizes[0]]:
        fits = [int(r) for r in ratios if r not in too_small]
        raise TableError(
            f"budget ratio(s) {too_small} give budgets below the smallest subset in {table.source} "
            f"({format_number(table.sizes[0])} examples; target {format_number(target)}): use ratios "
            f"up to {int(target // table.sizes[0])}" + (f", e.g. {','.join(map(str, fits))}" if fits else "")
        )
    have = np.isfinite(truth)
    if not have.any():
        raise TableError(f"no candidate has a loss at the target size {target:g}")
    if not have.all():
        missing = [n for n, h in zip(table.names, have) if not h]
        warnings.warn(f"left out of the evaluation, no loss at target {target:g}: {missing}", stacklevel=3)
        table = table.subset([n for n, h in zip(table.names, have) if h])
    return table


def _selected(table, method, ratio, target, rule: RuleSettings | None, options) -> tuple[Selection, Any]:
    """The selection at budget ``target / ratio``: the full schedule's, or with a ``rule`` the
    adaptive one's, with each candidate's place in its ranking (the eliminated after the
    survivors); a warning when it ranks nobody, or when the rule can stop nobody."""
    if rule is None:
        sel, picks = select(table, method, budget=target / ratio, target=target, level=0.8, **options), None
    else:
        sel = simulate(
            table, target / ratio, target, settings=rule, method=method, level=0.8, **options
        ).selection
        order = {c.name: i for i, c in enumerate(sel.candidates)}
        picks = np.array([order[n] for n in table.names], dtype=float)
        if sel.prob_best is None:
            warnings.warn(
                f"{method} gives no P(best): the adaptive schedule stops none of its candidates "
                "(its Compute counts every in-budget size)",
                stacklevel=3,
            )
    if not sel.ranking:
        reasons = sorted(set(sel.unrankable.values()))
        warnings.warn(f"{method} at 1/{ratio}: no candidate is rankable ({'; '.join(reasons)})", stacklevel=3)
    return sel, picks


def _missing_columns(table: LossTable, method: str) -> list[str]:
    """The table columns ``method`` needs and ``table`` lacks (``'0'``: zero-shot, ``'size'``)."""
    column = {"zero_shot": "'0'", "num_params": "'size'"}
    return [column[need] for need in METHODS[method].needs if getattr(table, need) is None]


def _metrics(sel, table, truth, scores, draws, target, metrics, method, picks=None) -> dict[str, float]:
    out: dict[str, float] = {}
    if {"HitRate", "Regret"} & set(metrics):  # one pick per pool serves both
        best = truth[draws].min(axis=1)
        picked = truth[pool_choices(scores if picks is None else picks, draws)]
    for m in metrics:
        if m == "PearCorr":
            # the paper correlates log parameter count itself for ModelSize
            out[m] = pearcorr(-scores if method == "modelsize" else scores, truth)
        elif m == "RelAcc":
            out[m] = relacc(truth[table.names.index(sel.best)] if sel.ranking else np.nan, truth)
        elif m == "HitRate":
            out[m] = float(100 * np.mean(picked <= best))
        elif m == "Regret":
            out[m] = float(100 * np.mean((picked - best) / best))
        elif m == "Brier":
            probs = sel.prob_best
            if probs is not None:
                p = np.array([probs.get(n, 0.0) for n in table.names])
                out[m] = brier(p, truth)
        elif m == "Coverage80":
            by_name = {c.name: c.interval for c in sel.candidates if c.rankable and c.interval is not None}
            if by_name:
                low, high = np.array([by_name.get(n, (np.nan, np.nan)) for n in table.names], dtype=float).T
                out[m] = coverage(low, high, truth)
        elif m == "Compute":
            out[m] = 100 * sel.examples / (len(truth) * target)
    return out


def _pools(n: int, size: int, count: int, seed: int) -> np.ndarray:
    """``count`` random pools (rows) of ``size`` distinct candidates; the one pool of all when n <= size."""
    if n <= size:
        return np.arange(n)[None, :]
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((count, n)), axis=1)[:, :size]
