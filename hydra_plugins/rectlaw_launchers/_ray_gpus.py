"""``hydra/launcher=ray_gpus``: Hydra's Ray launcher, one GPU per candidate job, and a crash
reported as that candidate's failure.

Hydra's Ray launcher (``hydra-ray-launcher``) runs each job as a Ray task with the resources of
``hydra.launcher.ray.remote`` (``num_gpus``, ``num_cpus``) and Ray gives each task its own
``CUDA_VISIBLE_DEVICES``, so candidates spread over a box's GPUs, or a cluster's with
``hydra.launcher.ray.init.address``. It gathers a batch with one ``ray.get`` per job, so one job
whose worker died (killed for memory, a segfault) raises for the whole batch; and Ray retries a
task whose worker died, which trains that candidate again. This launcher gathers each job on its
own: a job whose task failed returns its failure as the job itself would (its ``candidate.json``
records the error), the other jobs' results and the sweep's summary stand, and nothing is retried
(``ray.remote.max_retries: 0`` in the shipped config). A candidate's own exceptions never reach
Ray: the job catches them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
from omegaconf import OmegaConf, open_dict

from lightning_rectlaw.app.job import candidate_name, write_record
from lightning_rectlaw.selection import Status

log = logging.getLogger(__name__)


class RayGpusLauncher(RayLauncher):
    """Hydra's ``RayLauncher`` (same ``ray.init`` and ``ray.remote`` options), gathering each job
    on its own so that a crashed job is that candidate's failure only."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:

        assert self.config is not None and self.hydra_context is not None and self.task_function
        setup_globals()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        import ray

        if not ray.is_initialized():
            ray.init(**OmegaConf.to_container(self.ray_cfg.init, resolve=True))
        options = OmegaConf.to_container(self.ray_cfg.remote, resolve=True)
        remote = ray.remote(**options)(_run_job) if options else ray.remote(_run_job)
        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config):
                config.hydra.job.id = f"job_id_for_{idx}"
                config.hydra.job.num = idx
            task = remote.remote(self.hydra_context, config, self.task_function, Singleton.get_state())
            jobs.append((overrides, config, task))
        return [self._gather(overrides, config, task) for overrides, config, task in jobs]

    @staticmethod
    def _gather(overrides, config, task) -> JobReturn:
        import ray

        try:
            return ray.get(task)
        except ray.exceptions.RayError as err:  # the task died, not the candidate's code: its failure
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"
            job_dir = Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(config, "hydra.sweep.subdir"))
            name = candidate_name(config, config.hydra.runtime.choices)
            log.error(f"candidate {name!r} failed on Ray: {error}")
            record = {"name": name, "status": Status.FAILED, "error": error}
            write_record(job_dir, record)
            # completed, as the job itself would have returned its failure: a failed return would
            # stop the sweep (Hydra's sweepers raise it) before the summary ranks the others
            return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=record)


def _run_job(hydra_context, config, task_function, singleton_state) -> JobReturn:
    """One job in its Ray worker, through Hydra's public ``run_job``, with the driver's state."""
    setup_globals()
    Singleton.set_state(singleton_state)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
