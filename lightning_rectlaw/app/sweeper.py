"""The adaptive sweep as a Hydra sweeper (``hydra/sweeper=rectlaw``): rounds of jobs through the
configured launcher, eliminating candidates between rounds.

Round 1 launches every candidate of the sweep (the product of the swept overrides, as Hydra's
basic sweeper builds it) on the first rung, ``rectlaw.budget=<rung>``, through whatever launcher
is configured (basic, joblib, submitit/Slurm). Their results are read, the rule of
:func:`lightning_rectlaw.schedule.rule.schedule_round` decides who continues, and the survivors are
launched on the next rung, up to the budget. A candidate keeps its job directory across rounds,
so its resume cache makes each round run only the new subset sizes. After every round the
decisions are written to ``<sweep dir>/rectlaw_rounds.json``; a killed sweep re-run with the same
sweep directory continues after the last finished round. The selection summary reads that file
and reports each candidate's last round, where it was eliminated and why, and the compute spent
against the full schedule.

This module holds the plugin's logic; ``hydra_plugins/rectlaw_sweeper`` registers it with Hydra.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lightning_rectlaw.core.budget import budget_size, parse_budget, subset_sizes
from lightning_rectlaw.core.files import atomic_write_text
from lightning_rectlaw.plugin.console import info
from lightning_rectlaw.schedule.rule import (
    DEFAULT_FLOOR,
    DEFAULT_MIN_POINTS,
    DEFAULT_RULE,
    DEFAULT_RUNGS,
    DEFAULT_THRESHOLD,
    schedule_round,
)
from lightning_rectlaw.schedule.rule import rungs as rung_budgets

__all__ = ["ROUNDS_FILE", "RectlawSweeperConf", "candidate_subdir", "plan_rungs", "read_rounds", "run_rounds"]

log = logging.getLogger(__name__)

#: The sweep's rounds and decisions, in the sweep directory.
ROUNDS_FILE = "rectlaw_rounds.json"


@dataclass
class RectlawSweeperConf:
    """``hydra/sweeper=rectlaw``: the adaptive sweep's options (``hydra.sweeper.threshold=0.05``)."""

    _target_: str = "hydra_plugins.rectlaw_sweeper.rectlaw_sweeper.RectlawSweeper"
    params: dict[str, str] | None = None  # the swept candidates, as for the basic sweeper
    rule: str = DEFAULT_RULE
    threshold: float = DEFAULT_THRESHOLD
    min_points: int = DEFAULT_MIN_POINTS
    floor: int = DEFAULT_FLOOR
    rungs: int = DEFAULT_RUNGS


def plan_rungs(
    budget: Any, min_size: int, target_size: int | None, count: int, need: int
) -> list[tuple[str, int]]:
    """The rungs as ``(value for rectlaw.budget, size in examples)``, smallest first: those of
    :func:`lightning_rectlaw.schedule.rule.rungs` over the subsets the budget runs (``need``: the
    subsets a candidate needs at a rung to be judged).

    Raises:
        ValueError: a fractional budget without ``rectlaw.target_size`` (the rungs cannot be
            planned before the train set is seen).
    """
    value = parse_budget(budget)
    if value <= 1 and target_size is None:
        raise ValueError(
            f"hydra/sweeper=rectlaw plans its rungs in examples: give an absolute rectlaw.budget "
            f"(e.g. 2048) or set rectlaw.target_size with the fraction {budget!r}"
        )
    top = int(budget_size(value, target_size or 0))
    return [(str(int(r)), int(r)) for r in rung_budgets(subset_sizes(top, min_size), top, count, need)]


def read_rounds(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The rounds file of a sweep directory, or ``None`` when it has none."""
    path = Path(sweep_dir) / ROUNDS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _write_rounds(sweep_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_text(sweep_dir / ROUNDS_FILE, json.dumps(state, indent=2))


def run_rounds(
    launch,
    candidates: list[list[str]],
    rungs: list[tuple[str, int]],
    sweep_dir: Path,
    *,
    rule: str,
    threshold: float,
    min_points: int,
    floor: int,
    method: str,
    options: dict[str, Any],
    subdir,
) -> list[Any]:
    """The rounds: ``launch(batch, first_job_index)`` runs a batch of override lists and returns
    their Hydra ``JobReturn``s; ``subdir(overrides)`` names a candidate's job directory."""
    from lightning_rectlaw.report.summary import loss_table

    keys = [" ".join(c) for c in candidates]
    plan = [r for r, _ in rungs]
    how = {"rule": rule, "threshold": threshold, "min_points": min_points, "floor": floor, "method": method}
    state = read_rounds(sweep_dir)
    if state is not None and any(
        state.get(k) != v for k, v in (("candidates", keys), ("rungs", plan), ("rule", how))
    ):
        raise ValueError(
            f"{sweep_dir / ROUNDS_FILE} is from a sweep with other candidates, rungs or rule; "
            "use a new hydra.sweep.dir or delete the file to start over"
        )
    if state is None:
        state = {"candidates": keys, "rungs": plan, "rule": how, "rounds": []}
    alive = list(keys)
    for done in state["rounds"]:  # resume: who was still running after the last finished round
        alive = [d["candidate"] for d in done["decisions"] if d["keep"]]
    returns = []
    job_index = sum(len(r["decisions"]) for r in state["rounds"])
    by_key = dict(zip(keys, candidates))
    for i in range(len(state["rounds"]), len(rungs)):
        value, size = rungs[i]
        info(f"round {i + 1}/{len(rungs)}: {len(alive)} candidate(s) on {size} examples")
        batch = [
            [*by_key[k], f"rectlaw.budget={value}", f"hydra.sweep.subdir='{subdir(by_key[k])}'"]
            for k in alive
        ]
        results = launch(batch, job_index)
        job_index += len(batch)
        returns.append(results)
        records = {k: _record(k, r) for k, r in zip(alive, results)}
        # A job that raised or failed before measuring is out; a curve too short for a prediction
        # at this rung is still in the race (the rule keeps what it cannot rank).
        # In the table each candidate goes by its key (its overrides): two jobs of one model with
        # other settings (model.lr=1e-3,1e-4) share a name.
        measured = {
            k: {**r, "status": "ok", "name": k}
            for k, r in records.items()
            if r.get("sizes") and "error" not in r
        }
        decisions = [
            {"candidate": k, "name": records[k]["name"], "keep": False, "reason": records[k]["status"]}
            for k in alive
            if k not in measured
        ]
        if measured:
            table = loss_table(list(measured.values()))
            target = _one_target(measured)
            _, judged = schedule_round(
                table,
                float(size),
                target,
                prob_threshold=threshold,
                min_points=min_points,
                min_survivors=floor,
                rule=rule,
                method=method,
                last=i == len(plan) - 1,
                **options,
            )
            judged = [{**asdict(d), "candidate": d.name, "name": records[d.name]["name"]} for d in judged]
            decisions = judged + decisions
        state["rounds"].append({"rung": value, "size": size, "decisions": decisions})
        _write_rounds(sweep_dir, state)
        out = [d for d in decisions if not d["keep"]]
        for d in out:
            info(f"round {i + 1}: {d['name']} {d['reason']}")
        alive = [d["candidate"] for d in decisions if d["keep"]]
        if not alive:
            break
    state["done"] = True
    _write_rounds(sweep_dir, state)
    return returns


def _one_target(measured: dict[str, dict[str, Any]]) -> float:
    """The target size all candidates were predicted at; refused when they differ (a sweep over
    datasets or target sizes), since P(best) compares their losses at one size."""
    targets = {k: r.get("target_size") for k, r in measured.items()}
    if len(set(targets.values())) > 1:
        raise ValueError(
            f"hydra/sweeper=rectlaw compares candidates at one target size, but these were predicted "
            f"at different ones ({', '.join(f'{k}: {t}' for k, t in targets.items())}); sweep one "
            "dataset at a time, or set rectlaw.target_size"
        )
    return float(next(iter(targets.values())))


def _record(key: str, job: Any) -> dict[str, Any]:
    """A job's ``candidate.json`` record from its Hydra ``JobReturn`` (a failed record if it raised)."""
    try:
        value = job.return_value
    except Exception as err:  # noqa: BLE001 - a job that raised: that candidate failed, the sweep goes on
        return {"name": key, "status": f"failed: {type(err).__name__}: {err}", "error": str(err)}
    if not isinstance(value, dict):
        return {"name": key, "status": "failed: the job returned no result", "error": repr(value)}
    status = str(value.get("status", "failed"))
    if status == "failed" and value.get("error"):
        status = f"failed: {value['error']}"
    return {**value, "name": value.get("name") or key, "status": status}


def candidate_subdir(overrides: Sequence[str]) -> str:
    """A candidate's job directory: its overrides joined as Hydra's ``override_dirname`` does."""
    text = ",".join(sorted(overrides))
    for ch in "/\\:":
        text = text.replace(ch, "_")
    return text.replace("'", "").replace('"', "")
