"""The one rounds driver of the adaptive schedule: run a rung, judge, continue.

Every adaptive sweep runs on :func:`run_rounds`; they differ only in the ``run_rung`` they pass: the offline
replay (:func:`~lightning_rectlaw.schedule.replay.simulate`) looks the cells up in a loss table, the Hydra
sweeper (``hydra/sweeper=rectlaw``) launches one batch of jobs through the configured launcher, the in-process
sweep (:func:`lightning_rectlaw.adaptive_sweep`) fits each candidate with a Lightning Trainer.

After each rung the rule (:func:`~lightning_rectlaw.schedule.rule.schedule_round`) decides who
continues. With a ``state_file`` every finished round is written there atomically, and a re-run
with the same candidates, rungs and rule continues after the last finished round."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lightning_rectlaw.core.files import atomic_write_text
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.schedule.rule import (
    DEFAULT_SETTINGS,
    Cost,
    Decision,
    Reason,
    RuleSettings,
    schedule_round,
)
from lightning_rectlaw.selection import DEFAULT_METHOD, Selection

#: A sweep's rounds and decisions, in its sweep directory.
ROUNDS_FILE = "rectlaw_rounds.json"


class Rung(NamedTuple):
    """What one rung measured, as ``run_rung`` returns it.

    Attributes:
        table: the curves of the candidates that measured anything, rows named by candidate key
            (``None`` when none did).
        target: the size every candidate's loss is predicted at.
        failed: candidate key -> why it measured nothing; it stops here.
        names: candidate key -> the name people read, where it differs from the key."""

    table: LossTable | None
    target: float
    failed: Mapping[str, str] = {}
    names: Mapping[str, str] = {}


@dataclass(frozen=True)
class Round:
    """One finished round: its rung, a decision per candidate that ran it, and the selection the
    rule judged on (``None`` for a round read back from a state file, or when nobody measured)."""

    rung: float
    decisions: tuple[Decision, ...]
    selection: Selection | None = field(default=None, compare=False)


def read_rounds(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The rounds file of a sweep directory, or ``None`` when it has none."""
    path = Path(sweep_dir) / ROUNDS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def run_rounds(
    run_rung: Callable[[int, float, list[str]], Rung],
    candidates: Sequence[str],
    rungs: Sequence[float],
    settings: RuleSettings = DEFAULT_SETTINGS,
    *,
    method: str = DEFAULT_METHOD,
    cost: Cost | None = None,
    budget: float | None = None,
    state_file: str | Path | None = None,
    say: Callable[[str], None] | None = None,
    **options: Any,
) -> list[Round]:
    """Run the rungs, smallest first: ``run_rung(index, rung, alive)`` measures the candidates
    still running (keys of ``candidates``) up to ``rung`` examples; the rule judges them; who
    measured nothing stops. ``say`` gets a line per round and per stopped candidate; ``options``
    go to the method. With a compute budget (:func:`_allowance`) a round runs only while what was
    spent plus its ``cost`` fits; the round after which the next would not fit is the last.

    Raises:
        ValueError: ``state_file`` holds the rounds of another sweep (other candidates, rungs,
            rule or allowance), or the first round alone costs more than the allowance."""
    say = say or (lambda message: None)
    plan = [str(int(r)) if float(r).is_integer() else str(r) for r in rungs]
    allowance = _allowance(settings, cost, budget, float(rungs[0]), list(candidates))
    how = {**settings.file_form(method), **({} if allowance is None else {"allowance": allowance})}
    state = _resume(state_file, list(candidates), plan, how)
    rounds = [Round(float(r["size"]), tuple(_decision(d) for d in r["decisions"])) for r in state["rounds"]]
    spent, alive = sum(float(r.get("cost", 0.0)) for r in state["rounds"]), list(candidates)
    alive = [d.name for d in rounds[-1].decisions if d.keep] if rounds else alive

    def priced(i: int, who: list[str]) -> float:
        return 0.0 if cost is None else cost(float(rungs[i - 1]) if i else 0.0, float(rungs[i]), who)

    fits = lambda i, who: allowance is None or spent + priced(i, who) <= allowance  # noqa: E731
    for i in range(len(rounds), len(rungs) if alive and not state.get("done") else len(rounds)):
        rung, round_cost = float(rungs[i]), priced(i, alive)
        say(f"round {i + 1}/{len(rungs)}: {len(alive)} candidate(s) on {int(rung)} examples")
        measured, spent = run_rung(i, rung, alive), spent + round_cost
        last = i == len(rungs) - 1
        rnd = _judge(measured, rung, settings, method, last, options)
        if not last and not fits(i + 1, [d.name for d in rnd.decisions if d.keep]):
            last = True  # the allowance ends here: this round's ranking is the choice
            rnd = _judge(measured, rung, settings, method, True, options)
        rounds.append(rnd)
        state["rounds"].append(_round_record(plan[i], None if cost is None else round_cost, rnd, measured))
        _save(state_file, state)
        for d in (d for d in rnd.decisions if not d.keep):
            say(f"round {i + 1}: {measured.names.get(d.name, d.name)} {d.reason}")
        alive = [d.name for d in rnd.decisions if d.keep]
        if not alive or last:
            break
    state["done"] = True
    spending = {"spent": spent, "allowance": allowance, "budget": budget}
    _save(state_file, {**state, **(spending if allowance is not None else {})})
    return rounds


def _allowance(
    settings: RuleSettings, cost: Cost | None, budget: float | None, first: float, everyone: list[str]
) -> float | None:
    """The examples a compute budget allows: that multiple of ``cost(0, budget, everyone)``, the
    full schedule at the ``budget`` rung; ``None`` without a compute budget. Refused when the
    ``first`` rung alone costs more."""
    if settings.compute_budget is None:
        return None
    if cost is None or budget is None:
        raise ValueError("a compute budget needs the rounds' `cost` and the `budget` rung it multiplies")
    allowance = settings.compute_budget * cost(0.0, float(budget), everyone)
    if (need := cost(0.0, first, everyone)) > allowance:
        raise ValueError(
            f"the compute allowance ({allowance:.0f} examples) is less than the first round's cost "
            f"({need:.0f}): raise the compute budget"
        )
    return allowance


def _judge(
    measured: Rung, rung: float, settings: RuleSettings, method: str, last: bool, options: dict[str, Any]
) -> Round:
    """The round: the rule on what the rung measured (nobody to judge when nobody measured
    anything), then the candidates whose run failed, stopped."""
    selection, judged = None, []
    if measured.table is not None and len(measured.table):
        selection, judged = schedule_round(
            measured.table, rung, measured.target, settings, method=method, last=last, **options
        )
    failed = [Decision(k, code=Reason.RUN_FAILED, detail=why) for k, why in measured.failed.items()]
    return Round(rung, (*judged, *failed), selection)


def _round_record(rung: str, cost: float | None, rnd: Round, measured: Rung) -> dict[str, Any]:
    """A finished round as the rounds file writes it."""
    return {
        "rung": rung,
        "size": int(rnd.rung) if rnd.rung.is_integer() else rnd.rung,
        **({} if cost is None else {"cost": cost}),
        "decisions": [_record(d, measured.names.get(d.name, d.name)) for d in rnd.decisions],
    }


def _resume(state_file, candidates: list[str], plan: list[str], how: dict[str, Any]) -> dict[str, Any]:
    """The state to continue: the file's, when it is of this very sweep; a fresh one else."""
    fresh = {"candidates": candidates, "rungs": plan, "rule": how, "rounds": []}
    if state_file is None or not Path(state_file).exists():
        return fresh
    state = json.loads(Path(state_file).read_text())
    if any(state.get(k) != v for k, v in (("candidates", candidates), ("rungs", plan), ("rule", how))):
        raise ValueError(
            f"{state_file} is from a sweep with other candidates, rungs or rule (or compute budget); "
            "use a new hydra.sweep.dir or delete the file to start over"
        )
    return state


def _save(state_file, state: dict[str, Any]) -> None:
    if state_file is not None:
        atomic_write_text(state_file, json.dumps(state, indent=2))


def _record(d: Decision, name: str) -> dict[str, Any]:
    """A decision as the rounds file writes it: its ``reason`` in words, ``keep`` and ``failed``
    (what the summary reads), its ``code`` and ``detail`` (what a resumed sweep reads back), and
    the candidate's key and the ``name`` people read."""
    return {
        "name": name,
        "keep": d.keep,
        "reason": d.reason,
        "prob_best": d.prob_best,
        "predicted_loss": d.predicted_loss,
        "failed": d.failed,
        "code": d.code.value,
        "detail": d.detail,
        "candidate": d.name,
    }


def _decision(d: dict[str, Any]) -> Decision:
    """A decision read back from the rounds file (``candidate`` is its key). A file written before decisions
    had a ``code`` gives one from ``keep`` and ``failed``, and its ``reason`` as the ``detail``."""
    if "code" in d:
        code, detail = Reason(d["code"]), d["detail"]
    else:  # only `keep` and `failed` matter to a resumed sweep
        code, detail = (Reason.ABOVE_THRESHOLD if d["keep"] else Reason.BELOW_THRESHOLD), d["reason"]
        if d.get("failed"):
            code = Reason.RUN_FAILED
    return Decision(
        d.get("candidate", d["name"]),
        code=code,
        detail=detail,
        prob_best=d.get("prob_best"),
        predicted_loss=d.get("predicted_loss"),
    )
