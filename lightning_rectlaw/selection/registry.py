"""Model selectors: rank candidates by predicted test loss after fine-tuning on the full set.

Every selector reads only the points of a :class:`~lightning_rectlaw.core.table.LossTable` that lie
within the data budget (subset sizes ``<= budget``, plus the zero-shot column where it uses it)
and returns a :class:`Selection`: the ranking, each candidate's score (lower is better; the
predicted target loss where the method predicts one), its interval where it has one, and the
points each prediction used.

Pure numpy/scipy: no torch, Lightning or Hydra import here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np

from lightning_rectlaw.core.law import num_params
from lightning_rectlaw.core.predictive import SCHEMES
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection.ats import _ats, _robust_ats
from lightning_rectlaw.selection.baselines import (
    Selector,
    _modelsize,
    _ourfit,
    _pooled,
    _subtuning,
    _vanillafit,
    _zeroshot,
)
from lightning_rectlaw.selection.scores import Selection

DEFAULT_METHOD = "robust_ats"


@dataclass(frozen=True)
class Method:
    """One selector: the registry entry every entry point (``select``, the CLI, the callback, the
    Hydra app, the zoo script) reads, so a new selector is added here and nowhere else.

    Attributes:
        scorer: ``scorer(table, budget, target, level, **options) -> list[CandidateScore]``; its
            keyword parameters after those four are the method's options, with their defaults.
        label: the name in tables and plots (the paper's, where it has one).
        description: one line for ``rectlaw methods``.
        schedule: the subsets the callback must run for it: ``"all"`` (down to ``min_size``),
            ``"ats"`` (until AtS's walk stops) or ``"pooled"`` (the ``k + holdouts`` largest).
        needs: table columns it cannot do without: ``"zero_shot"`` (column ``0``),
            ``"num_params"`` (column ``size``).
        min_points: in-budget points a candidate needs, given the options.
        zero_shot_point: whether the zero-shot loss counts as one of those points (a law fitted
            through size 0); AtS-based methods use it only to screen diverged runs.
    """

    scorer: Selector
    _: KW_ONLY
    label: str
    description: str
    schedule: str = "all"
    needs: tuple[str, ...] = ()
    min_points: Callable[[dict[str, Any]], int] = field(default=lambda o: 1, repr=False)
    zero_shot_point: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """Accepted options and their defaults (from the scorer's signature)."""
        params = list(inspect.signature(self.scorer).parameters.values())[4:]
        return {p.name: p.default for p in params}

    def resolve(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """The full options for a call: defaults, overridden by ``options`` after validation."""
        if unknown := sorted(set(options) - set(self.options)):
            raise ValueError(
                f"`method={name!r}` has no option(s) {unknown}; its options are {sorted(self.options)}"
            )
        for key, value in options.items():
            check_option(key, value)
        return {**self.options, **options}


#: Valid values of the options the methods share: name → (test, what it must be).
OPTION_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "k": (lambda v: _is_int(v) and v >= 2, "an integer of at least 2 (a line needs two points)"),
    "delta": (lambda v: _is_real(v) and v > 0, "a positive number"),
    "holdouts": (lambda v: _is_int(v) and v >= 1, "an integer of at least 1"),
    "threshold": (lambda v: _is_real(v) and v > 0, "a positive number"),
    "floor": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "tau_all": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "tau_own": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "scheme": (lambda v: v in SCHEMES, f"one of {list(SCHEMES)}"),
    "own_scheme": (lambda v: v in SCHEMES, f"one of {list(SCHEMES)}"),
    "centre": (lambda v: isinstance(v, bool), "True or False"),
    "free_alpha": (lambda v: isinstance(v, bool), "True or False"),
    "huber_delta": (lambda v: _is_real(v) and v > 0, "a positive number"),
    "max_iter": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "seed": (lambda v: _is_int(v), "an integer"),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def check_option(key: str, value: Any) -> None:
    """Raise a ValueError naming ``key`` when ``value`` is not valid for it (:data:`OPTION_CHECKS`)."""
    check = OPTION_CHECKS.get(key)
    if check is not None and not check[0](value):
        raise ValueError(f"`{key}` must be {check[1]}, got {value!r}")


_LAW_OPTIONS = lambda law: lambda o: num_params(law, o.get("free_alpha", False))  # noqa: E731

METHODS: dict[str, Method] = {
    "robust_ats": Method(
        _robust_ats,
        label="RobustAtS",
        description="AtS on screened points (diverged and off-curve runs left out), with intervals and "
        "P(best) calibrated by in-budget backtests",
        min_points=lambda o: o["k"],
    ),
    "ats": Method(
        _ats,
        label="AtS",
        description="Accept then Stop: log-log line on the power-phase points, extrapolated",
        schedule="ats",
        min_points=lambda o: o["k"],
    ),
    "pooled": Method(
        _pooled,
        label="Pooled",
        description="local rectified-law extrapolation, exponent shared across candidates by "
        "in-budget backtest",
        schedule="pooled",
        min_points=lambda o: 2,
    ),
    "ourfit": Method(
        _ourfit,
        label="OurFit",
        description="rectified law fitted to all in-budget points incl. zero-shot",
        min_points=_LAW_OPTIONS("rectified"),
        zero_shot_point=True,
    ),
    "vanillafit": Method(
        _vanillafit,
        label="VanillaFit",
        description="vanilla law B/D^beta + E fitted to all in-budget points",
        min_points=_LAW_OPTIONS("vanilla"),
    ),
    "subtuning": Method(
        _subtuning, label="SubTuning", description="loss after fine-tuning on the budget-size subset"
    ),
    "zeroshot": Method(
        _zeroshot,
        label="ZeroShot",
        description="loss without fine-tuning",
        needs=("zero_shot",),
        min_points=lambda o: 0,
    ),
    "modelsize": Method(
        _modelsize,
        label="ModelSize",
        description="largest model first (score = -log parameter count)",
        needs=("num_params",),
        min_points=lambda o: 0,
    ),
}


def method_entry(method: str) -> Method:
    """The registry entry of ``method``, or a ValueError that lists the choices."""
    if method not in METHODS:
        text = str(method).lower().replace("-", "_")
        near = [k for k, m in METHODS.items() if text in (k, m.label.lower(), k.replace("_", ""))]
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"`method` should be one of {sorted(METHODS)}, got {method!r}{hint}")
    return METHODS[method]


def select(
    table: LossTable,
    method: str = DEFAULT_METHOD,
    budget: float | str = "1/8",
    target: float | None = None,
    level: float = 0.95,
    **options: Any,
) -> Selection:
    """Rank the candidates of ``table`` with ``method`` using only data within ``budget``.

    Args:
        table: the measured losses.
        method: one of :data:`METHODS` (default ``"robust_ats"``).
        budget: largest subset size the selector may use: a ratio of ``target`` (``"1/8"``,
            ``0.125``) or an absolute size (``204800``).
        target: the full fine-tuning set size to predict for (default: the table's largest size).
        level: coverage of the prediction intervals.
        **options: method options, e.g. ``k`` and ``delta`` for AtS, also ``holdouts``,
            ``threshold`` and ``floor`` for ``robust_ats``, ``k`` and ``holdouts`` for
            ``pooled``, ``free_alpha`` for fits.

    Example::

        table = LossTable.read_csv("flan.csv")
        select(table, budget="1/8").ranking[:3]
    """
    entry = method_entry(method)
    options = entry.resolve(method, options)
    target = table.max_size if target is None else float(target)
    if not np.isfinite(target) or target <= 0:
        raise ValueError(f"`target` must be a positive size, got {target!r}")
    budget_size = table.resolve_budget(budget, target)
    scored = entry.scorer(table, budget_size, target, level, **options)
    ranked = sorted((c for c in scored if c.rankable), key=lambda c: c.score)
    candidates = tuple(ranked) + tuple(c for c in scored if not c.rankable)
    return Selection(
        method, budget=budget_size, target=target, candidates=candidates, interval_level=level, table=table
    )
