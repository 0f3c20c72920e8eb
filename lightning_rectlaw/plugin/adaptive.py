"""The adaptive sweep without Hydra: the same rounds over candidate modules, in one process.

For notebooks and scripts that build their models in Python::

    from lightning_rectlaw import adaptive_sweep

    sweep = adaptive_sweep(
        {"gpt2": lambda: CausalLMModule("gpt2"), "opt": lambda: CausalLMModule("facebook/opt-125m")},
        my_datamodule,
        budget=4096,
        trainer={"max_epochs": 2, "accelerator": "auto"},
        results_dir="rectlaw_sweep",
    )
    sweep.best, sweep.describe(), sweep.results["gpt2"].plot()

Each round fits every candidate still running with :class:`RectifiedLawCallback` on the round's budget
(``results_dir/<name>`` keeps its finished subsets, so the next round trains only the new sizes and a re-run
after an interruption resumes), then applies :func:`lightning_rectlaw.schedule.rule.schedule_round`. A
candidate whose fit raises is reported as failed and the others go on."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from lightning_rectlaw.core.budget import SWEEP_MIN_SIZE
from lightning_rectlaw.plugin.callback import RectifiedLawCallback
from lightning_rectlaw.plugin.console import info
from lightning_rectlaw.plugin.datamodule import NestedSubsetDataModule
from lightning_rectlaw.schedule.rounds import Rung, run_rounds
from lightning_rectlaw.schedule.rule import Decision, RuleSettings, plan_rungs, settings_from, training_cost
from lightning_rectlaw.selection import DEFAULT_METHOD, RectifiedLawResult, Status, incomparable, loss_table
from lightning_rectlaw.selection.registry import method_entry


@dataclass
class AdaptiveSweep:
    """The rounds of an in-process adaptive sweep.

    Attributes:
        rungs: the rung budgets in examples, smallest first.
        rounds: per rung, the decision for every candidate that ran it.
        results: each candidate's callback result from the last rung it ran.
        failed: candidate -> the error of a fit that raised.
        eliminated_at: candidate -> the rung after which it stopped."""

    rungs: list[int]
    _: KW_ONLY
    rounds: list[list[Decision]] = field(default_factory=list)
    results: dict[str, RectifiedLawResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    eliminated_at: dict[str, int] = field(default_factory=dict)

    @property
    def ranking(self) -> list[str]:
        """Survivors by predicted loss at the budget, then the eliminated, the later first; a
        candidate whose fit failed in any round is not ranked."""

        def key(name: str) -> tuple[float, float]:
            loss = self.results[name].predicted_loss
            return (-self.eliminated_at.get(name, float("inf")), float("inf") if loss is None else loss)

        ranked = (n for n, r in self.results.items() if n not in self.failed and r.predicted_loss is not None)
        return sorted(ranked, key=key)

    @property
    def best(self) -> str:
        if not self.ranking:
            raise ValueError(f"no candidate was ranked; failed: {self.failed}")
        return self.ranking[0]

    def describe(self) -> list[str]:
        """One line per round: who ran, who stopped and why."""
        lines = []
        for rung, decisions in zip(self.rungs, self.rounds):
            out = [f"{d.name} ({d.reason})" for d in decisions if not d.keep]
            lines.append(f"rung {rung}: {len(decisions)} ran; stopped: {'; '.join(out) or 'none'}")
        return lines

    def recorded(self, rounds: list[Any]) -> AdaptiveSweep:
        """This sweep with the decisions of ``rounds`` (the failed runs are in :attr:`failed`)."""
        for rnd in rounds:
            judged = [d for d in rnd.decisions if not d.failed]
            self.rounds += [judged] if judged else []
            self.eliminated_at.update({d.name: int(rnd.rung) for d in judged if not d.keep})
        return self

    def __repr__(self) -> str:
        best = f"best={self.ranking[0]!r}, " if self.ranking else ""
        return f"AdaptiveSweep({best}rungs={self.rungs}, eliminated={sorted(self.eliminated_at)})"


def adaptive_sweep(
    candidates: Mapping[str, Callable[[], Any]],
    datamodule: Any,
    budget: int | str,
    *,
    results_dir: str | Path,
    trainer: Mapping[str, Any] | None = None,
    min_size: int = SWEEP_MIN_SIZE,
    target_size: int | None = None,
    seed: int = 0,
    callback: Mapping[str, Any] | None = None,
    settings: RuleSettings | None = None,
    **legacy: Any,
) -> AdaptiveSweep:
    """Successive elimination over ``candidates`` (name -> a function that builds the module).

    Args:
        candidates: the models, built fresh each round, after seeding every RNG with ``seed``
            (as the sweep app does for each job: the same initial weights every round).
        datamodule: your LightningDataModule (wrapped in a :class:`NestedSubsetDataModule`).
        budget: the largest subset, examples or a fraction of the target (``"1/8"``).
        results_dir: where each candidate's finished subsets are kept (``<dir>/<name>``).
        trainer: keyword arguments of each round's ``lightning.Trainer``; its ``callbacks`` go
            next to the sweep's own (a ``BackboneFinetuning`` shapes every subset run).
        min_size, target_size, seed: as for :class:`NestedSubsetDataModule` (``min_size``: the app's default).
        callback: keyword arguments of :class:`RectifiedLawCallback` (``method``, its options...).
        settings: the rule (:class:`~lightning_rectlaw.schedule.rule.RuleSettings`), its ``compute_budget``
            included; as keywords (``prob_threshold=0.1``) they still work, with a DeprecationWarning.

    Raises:
        ValueError: after a round whose candidates cannot be ranked together (other metrics, or
            other tokenizers on a per-token loss: pass ``callback={"monitor": "val_bpb"}``)."""
    settings = settings_from(settings, legacy, "adaptive_sweep")
    probe = NestedSubsetDataModule(
        datamodule, budget=budget, min_size=min_size, target_size=target_size, seed=seed
    )
    probe.setup("fit")
    options = dict(callback or {})
    method = options.get("method", DEFAULT_METHOD)
    method_options = {k: v for k, v in options.items() if k in method_entry(method).defaults}
    need = settings.points(method, method_options)
    sweep = AdaptiveSweep(plan_rungs(settings, probe.max_size, min_size, probe.target, need))
    data = {"datamodule": datamodule, "min_size": min_size, "target_size": probe.target, "seed": seed}
    rounds = run_rounds(
        lambda i, rung, alive: _fit_round(
            sweep, candidates, alive, {**data, "budget": int(rung)}, trainer, Path(results_dir), options
        ),
        list(candidates),
        sweep.rungs,
        settings,
        method=method,
        cost=training_cost(min_size, int(dict(trainer or {}).get("max_epochs") or 1)),
        budget=probe.max_size,
        say=info,
        **method_options,
    )
    return sweep.recorded(rounds)


def _fit_round(
    sweep: AdaptiveSweep,
    candidates: Mapping[str, Callable[[], Any]],
    alive: list[str],
    data: dict[str, Any],
    trainer: Mapping[str, Any] | None,
    results_dir: Path,
    callback: dict[str, Any],
) -> Rung:
    """Fit every candidate still running, each on a fresh :class:`NestedSubsetDataModule` of the round's
    (``data``: its arguments), recording each result (or failure) in ``sweep``; what the round measured."""
    for name in alive:
        law = RectifiedLawCallback(results_dir=results_dir / name, name=name, **callback)
        try:
            # the same initial weights every round, so the resume cache reuses the finished subsets
            L.seed_everything(data["seed"], workers=True, verbose=False)
            model = candidates[name]()
            kwargs = dict(trainer or {})
            own = list(kwargs.pop("callbacks", None) or [])
            L.Trainer(callbacks=[law, *own], **kwargs).fit(model, datamodule=NestedSubsetDataModule(**data))
            sweep.results[name] = law.result
        except Exception as err:  # noqa: BLE001 - recorded and reported; the others go on
            sweep.failed[name] = f"{type(err).__name__}: {err}"
            info(f"{name} failed: {sweep.failed[name]}\n{traceback.format_exc()}")
    for n in alive:
        if n not in sweep.failed and not sweep.results[n].sizes:
            sweep.failed[n] = f"no subset finished ({sweep.results[n].status})"
    failed = {n: sweep.failed[n] for n in alive if n in sweep.failed}
    records = [{**vars(sweep.results[n]), "name": n, "status": Status.OK} for n in alive if n not in failed]
    if why := incomparable(records):
        raise ValueError(f"adaptive_sweep ranks none of the candidates: {why.problem}\n{why.fix}")
    return Rung(loss_table(records) if records else None, float(data["target_size"]), failed)
