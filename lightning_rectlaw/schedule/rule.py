"""Successive elimination across candidates: spend compute only on contenders.

Candidates are fine-tuned on nested subsets up to a *rung* (a budget), all of them on the first rung; after
each rung the default selector ranks the ones still running, on what they have run, each with its calibrated
probability of being the best (P(best)), and the least likely stop there by the rule (:data:`RULES`; the
settings are one :class:`RuleSettings`). The survivors go on to the next rung (twice the size), up to the
budget, where the last ranking is the choice. Multi-fidelity elimination (ASHA, Hyperband) compares candidates
at equal fidelity, which ranks fine-tuning curves badly; here each candidate is compared on its *extrapolated*
loss at the target size, with the uncertainty of that extrapolation.

Guards against eliminating on too little evidence: ``min_points`` and ``min_survivors``
(:class:`RuleSettings`), and a candidate the selector cannot rank at a rung is kept.

:func:`schedule_round` is the rule as a pure function of the losses measured so far; it says
why each candidate continues or stops; :meth:`RuleSettings.plan` lays out the rungs of a budget. The
rounds themselves run on :mod:`~lightning_rectlaw.schedule.rounds`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, fields, replace
from enum import Enum
from typing import Any, Optional

import numpy as np

from lightning_rectlaw.core.budget import budget_size, parse_budget, subset_sizes
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection import DEFAULT_METHOD, CandidateScore, Selection, select
from lightning_rectlaw.selection.registry import method_entry

#: How the threshold applies: ``"mass"`` stops the least likely candidates while their *summed*
#: P(best) stays below it (it bounds the chance that a round stops the best); ``"each"`` stops
#: every candidate whose own P(best) is below it (many near misses can then add up).
RULES = ("mass", "each")


@dataclass(frozen=True)
class RuleSettings:
    """The adaptive rule's settings, one spelling each, checked once; every driver takes them
    (``simulate``, ``adaptive_sweep``, ``hydra/sweeper=rectlaw``, ``evaluate``).

    The defaults are the variant ``benchmarks/adaptive.py`` chooses on all five of its tables; the
    docs report what the same choice scores on each table when it is held out (not always this
    variant, and not always safe: see there before raising the threshold).

    Attributes:
        rule: how the threshold applies (:data:`RULES`).
        prob_threshold: the P(best) the candidates stopped in one round may hold together
            (``"each"``: each of them), in [0, 1). Not ``robust_ats``'s ``threshold``.
        min_points: points a candidate needs at a rung before it can be eliminated there (>= 2).
        min_survivors: candidates that survive every rung, whatever their P(best) (>= 1).
        rungs: rungs per sweep: budget/16, budget/8, budget/4, budget/2, budget for 5.
        compute_budget: a multiple of the full schedule's compute at the budget (1: the paper's):
            the survivors go on to 2x, 4x, ... the budget while the rounds' training fits in it;
            ``None``: stop at the budget."""

    rule: str = "mass"
    prob_threshold: float = 0.2
    min_points: int = 3
    min_survivors: int = 2
    rungs: int = 5
    compute_budget: Optional[float] = None  # noqa: UP045 - the sweeper's Hydra schema reads these types

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"`rule` must be one of {', '.join(RULES)}, got {self.rule!r}")
        if not 0 <= self.prob_threshold < 1:
            raise ValueError(f"`prob_threshold` must be in [0, 1), got {self.prob_threshold!r}")
        if self.min_points < 2 or self.min_survivors < 1 or self.rungs < 1:
            raise ValueError(
                "`min_points` must be at least 2, `min_survivors` and `rungs` at least 1, "
                f"got {self.min_points}, {self.min_survivors}, {self.rungs}"
            )
        if self.compute_budget is not None and not self.compute_budget > 0:
            raise ValueError(
                "`compute_budget` must be a positive multiple of the full schedule, "
                f"got {self.compute_budget!r}"
            )

    def points(self, method: str, options: Mapping[str, Any]) -> int:
        """Subsets a candidate needs at a rung: :attr:`min_points`, and what ``method`` needs to rank."""
        entry = method_entry(method)
        return max(self.min_points, entry.min_points(entry.resolve(method, options)), 2)

    def plan(
        self, sizes: Sequence[float], budget: float, limit: float, need: int | None = None
    ) -> list[float]:
        """The rungs, smallest first: ``budget / 2**(rungs-1), ..., budget``, without those where
        fewer than ``need`` (default :attr:`min_points`) of ``sizes`` fit (no one could be judged
        there); with a :attr:`compute_budget`, then 2x, 4x, ... the budget up to ``limit`` (half
        the target: a subset as large as the target is the full fine-tuning itself)."""
        sizes = np.asarray(sizes, dtype=float)
        need = self.min_points if need is None else need
        out = [
            float(budget / 2**j)
            for j in range(self.rungs - 1, -1, -1)
            if j == 0 or np.sum(sizes <= budget / 2**j * (1 + 1e-9)) >= need
        ]
        if self.compute_budget is not None:
            rung = 2.0 * budget
            while rung <= limit * (1 + 1e-9):
                out.append(rung)
                rung *= 2
        return out

    def file_form(self, method: str) -> dict[str, Any]:
        """The settings as the rounds file has always named them (a resumed sweep compares them)."""
        return {
            "rule": self.rule,
            "threshold": self.prob_threshold,
            "min_points": self.min_points,
            "floor": self.min_survivors,
            "method": method,
        }


DEFAULT_SETTINGS = RuleSettings()

#: Old spellings of the settings: ``hydra.sweeper.threshold``, ``floor``; ``simulate(count=)``.
RENAMED = {"threshold": "prob_threshold", "floor": "min_survivors", "count": "rungs"}


def settings_from(
    settings: RuleSettings | None,
    legacy: Mapping[str, Any],
    where: str,
    new: str = "settings=RuleSettings({}=...)",
) -> RuleSettings:
    """``settings`` (default :class:`RuleSettings`) with the settings given the old way, as
    keywords of ``where``, each with a DeprecationWarning naming the new spelling (``new``).

    Raises:
        TypeError: a keyword that is no setting."""
    names = {f.name for f in fields(RuleSettings)}
    given = {}
    for old, value in legacy.items():
        name = RENAMED.get(old, old)
        if name not in names:
            raise TypeError(f"{where}() got an unexpected keyword argument {old!r}")
        warnings.warn(
            f"{where}: `{old}` is deprecated, use {new.format(name)}", DeprecationWarning, stacklevel=3
        )
        given[name] = value
    return replace(settings or DEFAULT_SETTINGS, **given)


class Reason(str, Enum):
    """Why a candidate goes on after a rung or stops there: a :class:`Decision`'s ``code``.
    Code branches on it; the words (``Decision.reason``) are for people and the rounds file."""

    LAST_RUNG = "last_rung"  #: kept: the rung whose ranking is the choice
    NO_PROB_BEST = "no_prob_best"  #: kept: the method gives no P(best), so nobody stops
    NOT_RANKABLE = "not_rankable"  #: kept: the method cannot rank it at this rung
    TOO_FEW_POINTS = "too_few_points"  #: kept: fewer than ``min_points`` measured in the rung
    AMONG_TOP = "among_top"  #: kept: among the ``min_survivors`` most likely to be best
    ABOVE_THRESHOLD = "above_threshold"  #: kept: stopping it too would reach the threshold
    BELOW_THRESHOLD = "below_threshold"  #: eliminated: its P(best) is below the threshold
    RUN_FAILED = "run_failed"  #: stopped: it measured nothing (its run failed)

    def __str__(self) -> str:
        return self.value

    @property
    def keeps(self) -> bool:
        """Whether a candidate with this reason goes on to the next rung."""
        return self not in (Reason.BELOW_THRESHOLD, Reason.RUN_FAILED)

    @property
    def verdict(self) -> str:
        """What the reason's words start with: ``kept: ``, ``eliminated: `` or nothing."""
        if self is Reason.BELOW_THRESHOLD:
            return "eliminated: "
        return "" if self in (Reason.LAST_RUNG, Reason.NO_PROB_BEST, Reason.RUN_FAILED) else "kept: "


@dataclass(frozen=True)
class Decision:
    """What happens to one candidate after a rung.

    Attributes:
        name: the candidate.
        code: why it goes on or stops, as a :class:`Reason`; ``keep`` and ``failed`` follow from it.
        detail: the why in words, after the verdict (its P(best) against the threshold, the
            guard that kept it, the error of a failed run).
        prob_best: its probability of being the best among those still running (``None`` when
            it could not be ranked).
        predicted_loss: its predicted loss at the target from what it has run (``None``: none)."""

    name: str
    _: KW_ONLY
    code: Reason
    detail: str
    prob_best: float | None = None
    predicted_loss: float | None = None

    @property
    def keep(self) -> bool:
        """Whether it goes on to the next rung."""
        return self.code.keeps

    @property
    def failed(self) -> bool:
        """Whether it stops because it measured nothing (its run failed), not by the rule."""
        return self.code is Reason.RUN_FAILED

    @property
    def reason(self) -> str:
        """Why, in words, as the console and the rounds file say it: the verdict, then
        :attr:`detail` (``eliminated: P(best) 3% < threshold 20%``)."""
        return self.code.verdict + self.detail


def schedule_round(
    table: LossTable,
    rung: float,
    target: float,
    settings: RuleSettings = DEFAULT_SETTINGS,
    *,
    method: str = DEFAULT_METHOD,
    last: bool = False,
    **options,
) -> tuple[Selection, list[Decision]]:
    """Decide, after ``rung``, which candidates of ``table`` (those still running, with what they measured)
    continue. Returns the selection at this rung and one decision per candidate; after the ``last`` rung (the
    budget) nobody is eliminated: that selection is the choice. A method without P(best) (e.g. ``ats``)
    eliminates nobody: the rule needs calibrated probabilities to be safe."""
    sel = select(table, method, budget=rung, target=target, **options)
    probs = sel.prob_best
    by_name = {c.name: c for c in sel.candidates}
    in_rung = table.sizes <= rung * (1 + 1e-9)
    points = dict(zip(table.names, np.isfinite(table.losses[:, in_rung]).sum(axis=1).tolist()))
    min_points, min_survivors = settings.min_points, settings.min_survivors
    protected = set(sel.ranking[:min_survivors])

    def guard(name: str) -> tuple[Reason, str] | None:
        """Why ``name`` cannot be eliminated at this rung, or ``None`` when it can."""
        c = by_name[name]
        if last:
            return Reason.LAST_RUNG, "ran the whole budget"
        if probs is None:
            return Reason.NO_PROB_BEST, f"{method} gives no P(best): nobody is eliminated"
        if not c.rankable:
            return Reason.NOT_RANKABLE, f"not rankable at this rung ({c.reason})"
        if points[name] < min_points:
            return Reason.TOO_FEW_POINTS, f"{points[name]} point(s), fewer than {min_points} to judge"
        if name in protected:
            return Reason.AMONG_TOP, f"P(best) {_pct(probs[name])}, among the top {min_survivors}"
        return None

    reasons = {name: guard(name) for name in table.names}
    eligible = sorted((n for n, why in reasons.items() if why is None), key=lambda n: probs[n])
    reasons.update(_by_threshold({n: probs[n] for n in eligible}, settings.prob_threshold, settings.rule))
    return sel, [
        Decision(
            name,
            code=reasons[name][0],
            detail=reasons[name][1],
            prob_best=None if probs is None else probs.get(name),
            predicted_loss=_prediction(by_name[name]),
        )
        for name in table.names
    ]


def _by_threshold(probs: dict[str, float], threshold: float, rule: str) -> dict[str, tuple[Reason, str]]:
    """The rule on the candidates it may stop (``probs``, least likely first): each one's
    reason, stopped (below the threshold) or kept (at or above it)."""
    stopped: list[str] = []
    mass = 0.0
    for name, p in probs.items():
        if (p if rule == "each" else mass + p) >= threshold:
            break
        stopped.append(name)
        mass += p
    limit, out = _pct(threshold), {}
    for name, p in probs.items():
        if rule == "each":
            why = f"P(best) {_pct(p)} {'<' if name in stopped else '>='} threshold {limit}"
        elif name in stopped:
            held = f"the {len(stopped)} stopped this round hold {_pct(mass)}"
            why = f"P(best) {_pct(p)}; {held} < threshold {limit}"
        else:
            why = f"P(best) {_pct(p)}; stopping it too: {_pct(mass + p)} >= threshold {limit}"
        out[name] = (Reason.BELOW_THRESHOLD if name in stopped else Reason.ABOVE_THRESHOLD, why)
    return out


def _prediction(c: CandidateScore) -> float | None:
    if c.predicted_loss is not None:
        return float(c.predicted_loss)
    return None if math.isnan(c.score) else float(c.score)


def _pct(p: float | None) -> str:
    if p is None:
        return "unknown"
    return f"{100 * p:.2g}%" if p < 0.1 else f"{100 * p:.0f}%"


#: What a round trains, known before it is run: ``cost(before, rung, alive)``, the examples the
#: candidates ``alive`` train on their subsets above ``before`` and up to ``rung``.
Cost = Callable[[float, float, Sequence[str]], float]


def training_cost(min_size: int, epochs: int) -> Cost:
    """The cost of jobs that run nested subsets from ``min_size`` up: per candidate, the subsets
    new since the rung before, each from the original weights, times ``epochs``. With
    ``before = 0`` it is the full schedule's cost at ``rung``."""

    def cost(before: float, rung: float, alive: Sequence[str]) -> float:
        return len(alive) * epochs * sum(s for s in subset_sizes(int(rung), min_size) if s > before)

    return cost


def plan_rungs(
    settings: RuleSettings, budget: Any, min_size: int, target_size: int | None, need: int
) -> list[int]:
    """The rung sizes in examples, smallest first (:meth:`RuleSettings.plan` over the subsets a
    budget runs from ``min_size`` up; ``need``: the subsets a candidate needs at a rung to be
    judged). Past the budget they go up to half the target; with no ``target_size``, up to
    1024x the budget, and the sweep learns the target from its first round.

    Raises:
        ValueError: a fractional budget without ``target_size`` (the rungs cannot be planned before
            the train set is seen)."""
    value = parse_budget(budget)
    if value <= 1 and target_size is None:
        raise ValueError(
            f"hydra/sweeper=rectlaw plans its rungs in examples: give an absolute rectlaw.budget "
            f"(e.g. 2048) or set rectlaw.target_size with the fraction {budget!r}"
        )
    top = int(budget_size(value, target_size or 0))
    limit = target_size / 2 if target_size else top * 2**10
    return [int(r) for r in settings.plan(subset_sizes(top, min_size), top, limit, need)]
