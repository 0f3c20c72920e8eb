"""``hydra/sweeper=rectlaw``: successive elimination across the sweep's candidates, in rounds of
jobs through the configured launcher (the logic is in :mod:`lightning_rectlaw.app.sweeper`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from lightning_rectlaw.app.jobdir import candidate_subdir
from lightning_rectlaw.app.sweeper import RectlawSweeperConf, jobs_of, launch_rounds
from lightning_rectlaw.schedule.rule import plan_rungs, points_to_judge
from lightning_rectlaw.selection.registry import method_entry

log = logging.getLogger(__name__)

ConfigStore.instance().store(
    group="hydra/sweeper", name="rectlaw", node=RectlawSweeperConf, provider="lightning_rectlaw"
)


class RectlawSweeper(Sweeper):
    """Rounds of the sweep's candidates on growing budgets; the unlikely ones stop early."""

    def __init__(
        self,
        params: dict[str, str] | None,
        rule: str,
        threshold: float,
        min_points: int,
        floor: int,
        rungs: int,
        compute_budget: float | None = None,
    ) -> None:
        self.params = dict(params or {})
        self.rule, self.threshold = rule, threshold
        self.min_points, self.floor, self.rungs = min_points, floor, rungs
        self.compute_budget = compute_budget
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        if any(o.get_key_element() == "rectlaw.budget" and o.is_sweep_override() for o in overrides):
            raise ValueError(
                "hydra/sweeper=rectlaw sweeps candidates on rungs of one budget: give one rectlaw.budget"
            )
        jobs = jobs_of(overrides)
        swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
        candidates = [[o for o in job if not o.startswith("rectlaw.budget=")] for job in jobs]  # set per rung
        r = self.config.rectlaw
        fixed = {
            o.get_key_element(): o.get_value_element_as_str() for o in overrides if not o.is_sweep_override()
        }
        budget = fixed.get("rectlaw.budget", r.budget)
        min_size = int(fixed.get("rectlaw.min_size", r.min_size))
        target = fixed.get("rectlaw.target_size", r.target_size)
        target = None if target in (None, "null") else int(float(target))
        method = fixed.get("rectlaw.method", r.method)
        # the method's options as the jobs get them: the config's, or this command line's
        options = {k: type(r[k])(fixed.get(f"rectlaw.{k}", r[k])) for k in ("k", "delta", "holdouts")}
        options = {k: v for k, v in options.items() if k in method_entry(method).defaults}
        need = points_to_judge(self.min_points, method, options)  # subsets; the zero-shot point aside
        rungs = plan_rungs(budget, min_size, target, self.rungs, need)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        def launch(batch, first):
            self.validate_batch_is_legal(batch)
            return self.launcher.launch(batch, initial_job_idx=first)

        return launch_rounds(
            launch,
            candidates,
            rungs,
            sweep_dir,
            rule=self.rule,
            threshold=self.threshold,
            min_points=self.min_points,
            floor=self.floor,
            method=method,
            options=options,
            subdir=lambda job: candidate_subdir(job, swept),
            compute_budget=self.compute_budget,
            min_size=min_size,
            epochs=int(fixed.get("trainer.max_epochs", self.config.trainer.get("max_epochs") or 1)),
            target=target,
        )
