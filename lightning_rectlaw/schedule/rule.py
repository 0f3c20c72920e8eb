"""Successive elimination across candidates: spend compute only on contenders.

Candidates are fine-tuned on nested subsets up to a *rung* (a budget), all of them on the first
rung; after each rung the default selector ranks the ones still running, on what they have run,
each with its calibrated probability of being the best (P(best)), and the least likely stop there
while the P(best) they hold together stays below ``prob_threshold`` (``rule="mass"``, the default:
this bounds the chance that a round stops the best; ``rule="each"`` stops every candidate below
the threshold on its own). The survivors go on to the next rung (twice the size), up to the budget, where the
last ranking is the choice. Multi-fidelity elimination (ASHA, Hyperband) compares candidates at
equal fidelity, which ranks fine-tuning curves badly; here each candidate is compared on its
*extrapolated* loss at the target size, with the uncertainty of that extrapolation.

(Named apart from ``robust_ats``'s own ``threshold`` and ``floor``, its outlier screening's.)

Guards against eliminating on too little evidence:

- ``min_points``: a candidate with fewer measured points in the rung is never eliminated there
  (the rungs below the first one where every candidate can have that many are skipped);
- ``min_survivors``: at least this many candidates (the most likely to be best) survive every rung;
- a candidate the selector cannot rank at a rung (e.g. too few clean points) is kept.

:func:`schedule_round` is the rule as a pure function of the losses measured so far; it says
why each candidate continues or stops; :func:`plan_rungs` lays out the rungs of a budget. The
rounds themselves run on :mod:`~lightning_rectlaw.schedule.rounds`.

Pure numpy/scipy: no torch, Lightning or Hydra import here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightning_rectlaw.core.budget import budget_size, parse_budget, subset_sizes
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection import (
    DEFAULT_METHOD,
    CandidateScore,
    Selection,
    method_entry,
    select,
)

# The defaults are the variant `benchmarks/adaptive.py` chooses on all five of its tables; the
# docs report what the same choice scores on each table when it is held out (not always this
# variant, and not always safe: see there before raising the threshold).
#: How the threshold applies: ``"mass"`` stops the least likely candidates while their *summed*
#: P(best) stays below it (it bounds the chance that a round stops the best); ``"each"`` stops
#: every candidate whose own P(best) is below it (many near misses can then add up).
RULES = ("mass", "each")
DEFAULT_RULE = "mass"
#: P(best) the candidates stopped in one round may hold together (``"each"``: each of them).
DEFAULT_THRESHOLD = 0.2
#: Points a candidate needs at a rung before it can be eliminated there.
DEFAULT_MIN_POINTS = 3
#: Candidates that survive every rung, whatever their P(best).
DEFAULT_FLOOR = 2
#: Rungs per sweep: budget/16, budget/8, budget/4, budget/2, budget.
DEFAULT_RUNGS = 5


@dataclass(frozen=True)
class Decision:
    """What happens to one candidate after a rung.

    Attributes:
        name: the candidate.
        keep: whether it goes on to the next rung.
        reason: why, in words (its P(best) against the threshold, or the guard that kept it).
        prob_best: its probability of being the best among those still running (``None`` when
            it could not be ranked).
        predicted_loss: its predicted loss at the target from what it has run (``None``: none).
        failed: it stops because it measured nothing (its run failed), not by the rule.
    """

    name: str
    keep: bool
    reason: str
    prob_best: float | None = None
    predicted_loss: float | None = None
    failed: bool = False


def rungs(
    sizes: Sequence[float],
    budget: float,
    count: int = DEFAULT_RUNGS,
    min_points: int = DEFAULT_MIN_POINTS,
) -> list[float]:
    """The rung budgets, smallest first: ``budget / 2**(count-1), ..., budget / 2, budget``, without
    those where fewer than ``min_points`` of ``sizes`` fit (no one could be judged there). The
    budget itself is always the last rung."""
    sizes = np.asarray(sizes, dtype=float)
    return [
        float(budget / 2**j)
        for j in range(count - 1, -1, -1)
        if j == 0 or np.sum(sizes <= budget / 2**j * (1 + 1e-9)) >= min_points
    ]


def schedule_round(
    table: LossTable,
    rung: float,
    target: float,
    *,
    prob_threshold: float = DEFAULT_THRESHOLD,
    min_points: int = DEFAULT_MIN_POINTS,
    min_survivors: int = DEFAULT_FLOOR,
    rule: str = DEFAULT_RULE,
    method: str = DEFAULT_METHOD,
    last: bool = False,
    **options,
) -> tuple[Selection, list[Decision]]:
    """Decide, after ``rung``, which candidates of ``table`` (those still running, with what they
    measured) continue. Returns the selection at this rung and one decision per candidate; after
    the ``last`` rung (the budget) nobody is eliminated: that selection is the choice.

    A method without P(best) (e.g. ``ats``) eliminates nobody: the rule needs calibrated
    probabilities to be safe.
    """
    if not 0 <= prob_threshold < 1:
        raise ValueError(f"`prob_threshold` must be in [0, 1), got {prob_threshold!r}")
    if rule not in RULES:
        raise ValueError(f"`rule` must be one of {', '.join(RULES)}, got {rule!r}")
    if min_points < 2 or min_survivors < 1:
        raise ValueError(
            "`min_points` must be at least 2 and `min_survivors` at least 1, "
            f"got {min_points}, {min_survivors}"
        )
    sel = select(table, method, budget=rung, target=target, **options)
    probs = sel.prob_best
    by_name = {c.name: c for c in sel.candidates}
    in_rung = table.sizes <= rung * (1 + 1e-9)
    points = dict(zip(table.names, np.isfinite(table.losses[:, in_rung]).sum(axis=1).tolist()))
    protected = set(sel.ranking[:min_survivors])

    def guard(name: str) -> str | None:
        """Why ``name`` cannot be eliminated at this rung, or ``None`` when it can."""
        c = by_name[name]
        if last:
            return "ran the whole budget"
        if probs is None:
            return f"{method} gives no P(best): nobody is eliminated"
        if not c.rankable:
            return f"kept: not rankable at this rung ({c.reason})"
        if points[name] < min_points:
            return f"kept: {points[name]} point(s), fewer than {min_points} to judge"
        if name in protected:
            return f"kept: P(best) {_pct(probs[name])}, among the top {min_survivors}"
        return None

    reasons = {name: guard(name) for name in table.names}
    eligible = sorted((n for n, why in reasons.items() if why is None), key=lambda n: probs[n])
    stopped: set[str] = set()
    mass = 0.0
    for name in eligible:  # least likely first
        if (probs[name] if rule == "each" else mass + probs[name]) >= prob_threshold:
            break
        stopped.add(name)
        mass += probs[name]
    limit = _pct(prob_threshold)
    for name in eligible:
        p, out = _pct(probs[name]), name in stopped
        if rule == "each":
            why = f"P(best) {p} {'<' if out else '>='} threshold {limit}"
        elif out:
            why = f"P(best) {p}; the {len(stopped)} stopped this round hold {_pct(mass)} < threshold {limit}"
        else:
            why = f"P(best) {p}; stopping it too: {_pct(mass + probs[name])} >= threshold {limit}"
        reasons[name] = ("eliminated: " if out else "kept: ") + why
    return sel, [
        Decision(
            name,
            name not in stopped,
            reasons[name],
            None if probs is None else probs.get(name),
            _prediction(by_name[name]),
        )
        for name in table.names
    ]


def points_to_judge(min_points: int, method: str, options: dict[str, Any]) -> int:
    """Subsets a candidate needs at a rung: the rule's minimum, and what ``method`` needs to rank."""
    entry = method_entry(method)
    return max(min_points, entry.min_points(entry.resolve(method, options)), 2)


def _prediction(c: CandidateScore) -> float | None:
    if c.predicted_loss is not None:
        return float(c.predicted_loss)
    return None if math.isnan(c.score) else float(c.score)


def _pct(p: float | None) -> str:
    if p is None:
        return "unknown"
    return f"{100 * p:.2g}%" if p < 0.1 else f"{100 * p:.0f}%"


def continuation(budget: float, limit: float) -> list[float]:
    """The rungs past the budget that a compute budget may buy: 2x, 4x, ... the budget, up to
    ``limit`` (half the target: a subset as large as the target is the full fine-tuning itself)."""
    out, rung = [], 2.0 * budget
    while rung <= limit * (1 + 1e-9):
        out.append(rung)
        rung *= 2
    return out


def training_cost(rungs: Sequence[float], i: int, candidates: int, min_size: int, epochs: int) -> int:
    """Training examples the round on ``rungs[i]`` costs ``candidates`` jobs that run nested
    subsets from ``min_size`` up: the subsets new since the rung before, each from the original
    weights, times ``epochs``. With ``i = len(rungs) - 1`` and every subset new (``rungs`` of
    one), the full schedule's cost at that rung."""
    before = rungs[i - 1] if i else 0
    return candidates * epochs * sum(s for s in subset_sizes(int(rungs[i]), min_size) if s > before)


def plan_rungs(budget: Any, min_size: int, target_size: int | None, count: int, need: int) -> list[int]:
    """The rung sizes in examples, smallest first: those of :func:`rungs` over the subsets a
    budget runs from ``min_size`` up (``need``: the subsets a candidate needs at a rung to be
    judged).

    Raises:
        ValueError: a fractional budget without ``target_size`` (the rungs cannot be planned before
            the train set is seen).
    """
    value = parse_budget(budget)
    if value <= 1 and target_size is None:
        raise ValueError(
            f"hydra/sweeper=rectlaw plans its rungs in examples: give an absolute rectlaw.budget "
            f"(e.g. 2048) or set rectlaw.target_size with the fraction {budget!r}"
        )
    top = int(budget_size(value, target_size or 0))
    return [int(r) for r in rungs(subset_sizes(top, min_size), top, count, need)]
