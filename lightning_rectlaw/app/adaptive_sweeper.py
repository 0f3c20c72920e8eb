"""The adaptive sweep as a Hydra sweeper (``hydra/sweeper=rectlaw``): rounds of jobs through the
configured launcher (basic, joblib, submitit/Slurm), eliminating candidates between rounds
(:func:`~lightning_rectlaw.schedule.rounds.run_rounds`).

Round 1 launches every candidate of the sweep (the product of the swept overrides, as Hydra's basic sweeper
builds it) on the first rung, ``rectlaw.budget=<rung>``; the survivors of each round go on to the next rung,
up to the budget. A candidate keeps its job directory across rounds, so its resume cache makes each round run
only the new subset sizes. With the rounds file (``<sweep dir>/rectlaw_rounds.json``) a killed sweep re-run
in the same sweep directory continues after the last finished round; the selection summary reports from it.

This module holds the plugin's logic; ``hydra_plugins/rectlaw_sweeper`` registers it with Hydra."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional, get_type_hints

from lightning_rectlaw.plugin.console import info
from lightning_rectlaw.schedule.rounds import ROUNDS_FILE, Rung, read_rounds, run_rounds
from lightning_rectlaw.schedule.rule import Cost, RuleSettings
from lightning_rectlaw.selection import Status, incomparable, loss_table
from lightning_rectlaw.selection.record import status_line

#: ``hydra/sweeper=rectlaw``'s schema: the swept candidates (``params``, as for the basic
#: sweeper) and the rule's settings, one key each (``hydra.sweeper.prob_threshold=0.05``); the
#: old ``threshold`` and ``floor`` still work, with a DeprecationWarning.
RectlawSweeperConf = make_dataclass(
    "RectlawSweeperConf",
    [
        ("_target_", str, field(default="hydra_plugins.rectlaw_sweeper.rectlaw_sweeper.RectlawSweeper")),
        ("params", Optional[dict[str, str]], field(default=None)),  # noqa: UP045 - OmegaConf reads Optional
        *(
            (f.name, get_type_hints(RuleSettings)[f.name], field(default=f.default))
            for f in fields(RuleSettings)
        ),
        ("threshold", Optional[float], field(default=None)),  # noqa: UP045
        ("floor", Optional[int], field(default=None)),  # noqa: UP045
    ],
)


class _NotComparable(Exception):
    """A rung's candidates cannot be ranked together (other metrics, or other tokenizers on a
    per-token loss): the rounds stop, and the summary ranks none and names the fix."""


def jobs_of(overrides: Sequence[Any]) -> list[list[str]]:
    """The sweep's jobs: the product of the parsed overrides' values, as Hydra's basic sweeper
    builds it (a key given twice keeps its last value; one job per combination, in order)."""
    by_key: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise ValueError(f"hydra/sweeper=rectlaw sweeps lists of values, not {o.input_line!r}")
            by_key[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            by_key[key] = [f"{key}={o.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*by_key.values())]


def launch_rounds(
    launch: Callable[[list[list[str]], int], Sequence[Any]],
    candidates: list[list[str]],
    plan: Sequence[int],
    sweep_dir: Path,
    *,
    settings: RuleSettings,
    method: str,
    options: dict[str, Any],
    subdir: Callable[[Sequence[str]], str],
    budget: int,
    cost: Cost,
    target: int | None = None,
) -> list[Any]:
    """The rounds of ``plan`` (:func:`~lightning_rectlaw.schedule.rule.plan_rungs`), each one launcher
    batch: ``launch(batch, first_job_index)`` returns the Hydra ``JobReturn``s of a batch of override
    lists; ``subdir(overrides)`` names a candidate's job directory. Returns the launcher's results,
    round by round. A round whose candidates cannot be ranked together is the last: nobody is
    judged, and the summary names the fix. With no ``target`` the jobs tell it; no round past half
    of it runs (as in :meth:`~lightning_rectlaw.schedule.rule.RuleSettings.plan`)."""
    seen = {"target": target}

    def capped(before: float, rung: float, alive: Sequence[str]) -> float:
        return math.inf if seen["target"] and rung > seen["target"] / 2 else cost(before, rung, alive)

    keys = [" ".join(c) for c in candidates]
    by_key = dict(zip(keys, candidates))
    first = sum(len(r["decisions"]) for r in state["rounds"]) if (state := read_rounds(sweep_dir)) else 0
    returns: list[Any] = []

    def run_rung(i: int, rung: float, alive: list[str]) -> Rung:
        batch = [
            [*by_key[k], f"rectlaw.budget={int(rung)}", f"hydra.sweep.subdir='{subdir(by_key[k])}'"]
            for k in alive
        ]
        returns.append(launch(batch, first + sum(map(len, returns))))
        rung_result = _measured_rung(alive, returns[-1])
        if rung_result.table is not None:
            seen["target"] = rung_result.target
        return rung_result._replace(target=seen["target"] or 0.0)

    try:
        run_rounds(
            run_rung,
            keys,
            plan,
            settings,
            method=method,
            cost=capped,
            budget=budget,
            state_file=sweep_dir / ROUNDS_FILE,
            say=info,
            **options,
        )
    except _NotComparable as err:
        info(f"no further round: {err}; the summary ranks none and names the fix")
    return returns


def _measured_rung(alive: list[str], results: Sequence[Any]) -> Rung:
    """What a batch of jobs measured. A job that raised or failed before measuring is out; a curve
    too short for a prediction at this rung is still in the race (the rule keeps what it cannot
    rank). In the table each candidate goes by its key (its overrides): two jobs of one model
    with other settings (model.lr=1e-3,1e-4) share a name."""
    records = {k: _record(k, r) for k, r in zip(alive, results)}
    measured = {k: {**r, "status": Status.OK, "name": k} for k, r in records.items() if _measured(r)}
    failed = {k: status_line(r) for k, r in records.items() if k not in measured}
    names = {k: r["name"] for k, r in records.items()}
    if why := incomparable(list(measured.values())):
        raise _NotComparable(why.problem)
    if not measured:
        return Rung(None, 0.0, failed, names)
    return Rung(loss_table(list(measured.values())), _one_target(measured), failed, names)


def _measured(record: dict[str, Any]) -> bool:
    return bool(record.get("sizes")) and "error" not in record


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
        return {"name": key, "status": Status.FAILED, "error": f"{type(err).__name__}: {err}"}
    if not isinstance(value, dict):
        return {"name": key, "status": Status.FAILED, "error": "the job returned no result"}
    return {"status": Status.FAILED, **value, "name": value.get("name") or key}
