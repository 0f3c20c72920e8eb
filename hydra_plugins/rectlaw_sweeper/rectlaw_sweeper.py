"""``hydra/sweeper=rectlaw``: successive elimination across the sweep's candidates, in rounds of
jobs through the configured launcher (the logic is in :mod:`lightning_rectlaw.app.adaptive_sweeper`)."""

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

from lightning_rectlaw.app.adaptive_sweeper import RectlawSweeperConf, jobs_of, launch_rounds
from lightning_rectlaw.app.jobdir import candidate_subdir
from lightning_rectlaw.core.budget import budget_size, parse_budget
from lightning_rectlaw.schedule.rule import RuleSettings, plan_rungs, settings_from, training_cost
from lightning_rectlaw.selection.registry import method_entry

log = logging.getLogger(__name__)

ConfigStore.instance().store(
    group="hydra/sweeper", name="rectlaw", node=RectlawSweeperConf, provider="lightning_rectlaw"
)


class RectlawSweeper(Sweeper):
    """Rounds of the sweep's candidates on growing budgets; the unlikely ones stop early."""

    def __init__(self, params: dict[str, str] | None = None, **settings: Any) -> None:
        self.params = dict(params or {})
        old = {k: settings.pop(k, None) for k in ("threshold", "floor")}  # the schema's unset None
        legacy = {k: v for k, v in old.items() if v is not None}
        self.settings = settings_from(
            RuleSettings(**settings), legacy, "hydra/sweeper=rectlaw", "hydra.sweeper.{}"
        )
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
        loader = self.hydra_context.config_loader
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(
            [*(f"{k}={v}" for k, v in self.params.items()), *arguments]
        )
        if any(o.get_key_element() == "rectlaw.budget" and o.is_sweep_override() for o in overrides):
            raise ValueError(
                "hydra/sweeper=rectlaw sweeps candidates on rungs of one budget: give one rectlaw.budget"
            )
        swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
        candidates = [[o for o in job if not o.startswith("rectlaw.budget=")] for job in jobs_of(overrides)]
        # the settings as the jobs get them: the first job's config, composed as the launcher will
        job = loader.load_sweep_config(self.config, jobs_of(overrides)[0])
        r, method = job.rectlaw, job.rectlaw.method
        options = {k: r[k] for k in method_entry(method).defaults}
        target = None if r.target_size is None else int(r.target_size)
        plan = plan_rungs(self.settings, r.budget, r.min_size, target, self.settings.points(method, options))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        def launch(batch, first):
            self.validate_batch_is_legal(batch)
            return self.launcher.launch(batch, initial_job_idx=first)

        return launch_rounds(
            launch,
            candidates,
            plan,
            sweep_dir,
            settings=self.settings,
            method=method,
            options=options,
            subdir=lambda overrides: candidate_subdir(overrides, swept),
            budget=int(budget_size(parse_budget(r.budget), target or 0)),
            cost=training_cost(r.min_size, int(job.trainer.get("max_epochs") or 1)),
            target=target,
        )
