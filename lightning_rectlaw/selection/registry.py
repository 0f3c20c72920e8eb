"""Model selectors: rank candidates by predicted test loss after fine-tuning on the full set.

Every selector reads only the points of a :class:`~lightning_rectlaw.core.table.LossTable` that lie within the
data budget (subset sizes ``<= budget``, plus the zero-shot column where it uses it) and returns a
:class:`Selection`: the ranking, and a :class:`~lightning_rectlaw.selection.scores.CandidateScore` per
candidate."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np

from lightning_rectlaw.core.law import num_params
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection import options as opt
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
from lightning_rectlaw.selection.options import Option
from lightning_rectlaw.selection.scores import Selection

DEFAULT_METHOD = "robust_ats"


@dataclass(frozen=True)
class Method:
    """One selector: the registry entry every entry point (``select``, the CLI, the callback, the Hydra app,
    the zoo script) reads, so a new selector, or a new option of one, is added here and nowhere else.

    Attributes:
        scorer: ``scorer(table, budget, target, level, **options) -> list[CandidateScore]``, called
            with every option of ``options`` by keyword.
        label: the name in tables and plots (the paper's, where it has one).
        description: one line for ``rectlaw methods``.
        options: the options it takes (:mod:`~lightning_rectlaw.selection.options`): their names,
            defaults and valid values; the callback, the app (``rectlaw.<name>``) and
            ``rectlaw select`` (``--<name>``) set them.
        schedule: the subsets the callback must run for it: ``"all"`` (down to ``min_size``),
            ``"ats"`` (until AtS's walk stops) or ``"pooled"`` (the :attr:`largest`).
        largest: with ``schedule="pooled"``, how many of the largest subsets it reads, given the options.
        needs: table columns it cannot do without: ``"zero_shot"`` (column ``0``),
            ``"num_params"`` (column ``size``).
        min_points: in-budget points a candidate needs, given the options.
        zero_shot_point: whether the zero-shot loss counts as one of those points (a law fitted
            through size 0); AtS-based methods use it only to screen diverged runs."""

    scorer: Selector
    _: KW_ONLY
    label: str
    description: str
    options: tuple[Option, ...] = ()
    schedule: str = "all"
    largest: Callable[[dict[str, Any]], int] | None = field(default=None, repr=False)
    needs: tuple[str, ...] = ()
    min_points: Callable[[dict[str, Any]], int] | None = field(default=None, repr=False)
    zero_shot_point: bool = False

    def __post_init__(self) -> None:
        if self.min_points is None:  # a method that reads no curve needs no point; the others one
            object.__setattr__(self, "min_points", lambda o, n=0 if self.needs else 1: n)

    @property
    def defaults(self) -> dict[str, Any]:
        """Its options' names and defaults."""
        return {o.name: o.default for o in self.options}

    def resolve(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The full options for a call: defaults, overridden by ``options`` after validation."""
        options = _renamed(self.options, options)
        if unknown := sorted(set(options) - set(self.defaults)):
            raise ValueError(
                f"`method={name!r}` has no option(s) {unknown}; its options are {sorted(self.defaults)}"
            )
        for option in self.options:
            if option.name in options:
                option.check(options[option.name])
        return {**self.defaults, **options}


def _renamed(declared: tuple[Option, ...], options: Mapping[str, Any]) -> Mapping[str, Any]:
    """``options`` with an option's old name replaced by its new one, with a DeprecationWarning."""
    new = {o.renamed_from: o.name for o in declared if o.renamed_from}
    for old in set(options) & set(new):
        warnings.warn(
            f"option `{old}` is now `{new[old]}`; the old name goes away", DeprecationWarning, stacklevel=4
        )
    return {new.get(k, k): v for k, v in options.items()}


def all_options() -> dict[str, Option]:
    """Every option of the registered methods, by name (one declaration per name)."""
    out: dict[str, Option] = {}
    for name, entry in METHODS.items():
        for option in entry.options:
            if out.setdefault(option.name, option) != option:
                raise ValueError(f"`{option.name}` is declared twice ({name!r}'s differs): declare it once")
    return out


_LAW_OPTIONS = lambda law: lambda o: num_params(law, o["free_alpha"])  # noqa: E731
_FIT = (opt.FREE_ALPHA, opt.HUBER_DELTA, opt.MAX_ITER)
_SPREAD = (opt.SCHEME, opt.CENTRE, opt.TAU_ALL, opt.OWN_SCHEME, opt.TAU_OWN)

METHODS: dict[str, Method] = {
    "robust_ats": Method(
        _robust_ats,
        label="RobustAtS",
        description="AtS on screened points (diverged and off-curve runs left out), with intervals and "
        "P(best) calibrated by in-budget backtests",
        options=(opt.K, opt.DELTA, opt.HOLDOUTS, opt.THRESHOLD, opt.FLOOR, *_SPREAD),
        min_points=lambda o: o["k"],
    ),
    "ats": Method(
        _ats,
        label="AtS",
        description="Accept then Stop: log-log line on the power-phase points, extrapolated",
        options=(opt.K, opt.DELTA),
        schedule="ats",
        min_points=lambda o: o["k"],
    ),
    "pooled": Method(
        _pooled,
        label="Pooled",
        description="local rectified-law extrapolation, exponent shared across candidates by "
        "in-budget backtest",
        options=(opt.K, opt.HOLDOUTS, opt.PROB_SEED),
        schedule="pooled",
        largest=lambda o: o["k"] + o["holdouts"],
        min_points=lambda o: 2,
    ),
    "ourfit": Method(
        _ourfit,
        label="OurFit",
        description="rectified law fitted to all in-budget points incl. zero-shot",
        options=_FIT,
        min_points=_LAW_OPTIONS("rectified"),
        zero_shot_point=True,
    ),
    "vanillafit": Method(
        _vanillafit,
        label="VanillaFit",
        description="vanilla law B/D^beta + E fitted to all in-budget points",
        options=_FIT,
        min_points=_LAW_OPTIONS("vanilla"),
    ),
    "subtuning": Method(
        _subtuning, label="SubTuning", description="loss after fine-tuning on the budget-size subset"
    ),
    "zeroshot": Method(
        _zeroshot, label="ZeroShot", description="loss without fine-tuning", needs=("zero_shot",)
    ),
    "modelsize": Method(
        _modelsize,
        label="ModelSize",
        description="largest model first (score = -log parameter count)",
        needs=("num_params",),
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
        **options: the method's options (``rectlaw methods`` lists them), e.g. ``k`` and
            ``delta`` for AtS, also ``holdouts``, ``threshold`` and ``floor`` for ``robust_ats``.

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
