"""The adaptive schedule replayed offline on a recorded loss table: each rung reads only the
cells the schedule would have run, so ``Compute`` counts what a real sweep would have trained."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from lightning_rectlaw.core.presentation.formatting import format_number
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.schedule.rounds import Round, Rung, run_rounds
from lightning_rectlaw.schedule.rule import RENAMED, Decision, RuleSettings, settings_from
from lightning_rectlaw.selection import DEFAULT_METHOD, CandidateScore, Selection

#: The rule's settings, and their old spellings, that ``simulate`` still takes as keywords.
_SETTINGS = {f.name for f in fields(RuleSettings)} | set(RENAMED) - {"threshold", "floor"}


@dataclass(frozen=True)
class AdaptiveRun:
    """An adaptive sweep replayed on a table: the rounds, and the final selection.

    Attributes:
        rungs: the rung budgets, smallest first.
        rounds: per rung, the decision for every candidate that ran it.
        selection: the final ranking: survivors by their prediction at the budget, then the
            eliminated ones, the later eliminated first. Each candidate's ``sizes_run`` is what
            it ran, so ``selection.examples`` is the sweep's compute.
        eliminated_at: candidate -> the rung after which it stopped.
        allowance: with a compute budget, the examples it allowed (``examples`` is what was spent)."""

    rungs: tuple[float, ...]
    rounds: tuple[tuple[Decision, ...], ...]
    selection: Selection
    eliminated_at: dict[str, float] = field(default_factory=dict)
    allowance: float | None = None

    @property
    def examples(self) -> float:
        """Fine-tuning examples run (one pass over each subset)."""
        return self.selection.examples

    def describe(self) -> list[str]:
        """One line per round: who ran, who stopped and why."""
        lines = []
        for rung, decisions in zip(self.rungs, self.rounds):
            out = [d for d in decisions if not d.keep]
            gone = "; ".join(f"{d.name} ({d.detail})" for d in out) or "none"
            lines.append(f"rung {format_number(rung)}: {len(decisions)} ran, eliminated: {gone}")
        return lines


def simulate(
    table: LossTable,
    budget: float | str,
    target: float | None = None,
    *,
    settings: RuleSettings | None = None,
    method: str = DEFAULT_METHOD,
    level: float = 0.95,
    **options,
) -> AdaptiveRun:
    """Replay the adaptive schedule on ``table``: at each rung only the candidates still running are ranked,
    each on the cells up to that rung; nothing beyond a candidate's last rung is read. With
    ``settings.compute_budget`` (:class:`~lightning_rectlaw.schedule.rule.RuleSettings`) the survivors go on
    past the budget up to half the target; the last round run makes the choice. Each subset costs its size
    (one pass from the original weights). ``options`` go to the method; the settings as keywords
    (``prob_threshold=``, ``count=``) still work, with a DeprecationWarning."""
    legacy = {k: options.pop(k) for k in list(options) if k in _SETTINGS}
    settings = settings_from(settings, legacy, "simulate")
    target = table.max_size if target is None else float(target)
    budget_size = table.resolve_budget(budget, target)
    in_budget = table.sizes[table.sizes <= budget_size * (1 + 1e-9)]
    finite = np.isfinite(table.losses)

    def cost(before: float, rung: float, alive: Sequence[str]) -> float:
        """The cells the candidates ``alive`` read above ``before`` and up to ``rung``."""
        new = (table.sizes > before * (1 + 1e-9)) & (table.sizes <= rung * (1 + 1e-9))
        rows = [table.names.index(n) for n in alive]
        return float((finite[rows][:, new] * table.sizes[new]).sum())

    rounds = run_rounds(
        lambda i, rung, alive: Rung(table.subset(alive), target),  # the cells are all there
        table.names,
        settings.plan(in_budget, budget_size, target / 2),
        settings,
        method=method,
        cost=cost,
        budget=budget_size,
        level=level,
        **options,
    )
    multiple = settings.compute_budget
    allowance = None if multiple is None else multiple * cost(0, budget_size, table.names)
    return _replayed(table, rounds, budget_size, allowance)


def _replayed(table: LossTable, rounds: list[Round], budget: float, allowance: float | None) -> AdaptiveRun:
    """The run from its rounds (its ``selection`` as :class:`AdaptiveRun` describes it)."""
    finite = np.isfinite(table.losses)
    last = {c.name: (rnd.rung, c) for rnd in rounds for c in rnd.selection.candidates}
    eliminated_at = {d.name: rnd.rung for rnd in rounds for d in rnd.decisions if not d.keep}
    gone = sorted(
        (last[n][1] for n in eliminated_at),
        key=lambda c: (-last[c.name][0], c.score if c.rankable else math.inf),
    )

    def ran(c: CandidateScore) -> CandidateScore:
        """The candidate with ``sizes_run`` = every size up to its last rung it has."""
        i = table.names.index(c.name)
        keep = (table.sizes <= last[c.name][0] * (1 + 1e-9)) & finite[i]
        return replace(c, sizes_run=tuple(float(s) for s in table.sizes[keep]))

    final = rounds[-1].selection
    candidates = tuple(ran(c) for c in final.candidates) + tuple(ran(c) for c in gone)
    selection = replace(final, budget=budget, candidates=candidates, table=table)
    run = tuple(rnd.rung for rnd in rounds)
    return AdaptiveRun(run, tuple(rnd.decisions for rnd in rounds), selection, eliminated_at, allowance)
