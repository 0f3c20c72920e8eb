"""One Hydra job = one candidate: validate the config, instantiate, run the plugin, write a result.

Every job writes ``candidate.json`` in its output directory, also when it fails (with the error),
so that the selection summary can rank the others: Hydra's basic launcher would otherwise stop
reporting at the first failed job and skip the end-of-sweep callbacks.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from lightning_rectlaw.budget import parse_budget
from lightning_rectlaw.files import atomic_write_text
from lightning_rectlaw.summary import CANDIDATE_FILE

__all__ = ["CANDIDATE_FILE", "exit_code", "mark_failed", "run_candidate", "validate_config"]

log = logging.getLogger(__name__)
_EXIT = {"code": 0}


def mark_failed() -> None:
    """Make the process exit non-zero (:func:`exit_code`): a single run that failed, or a sweep
    in which no candidate could be ranked. A sweep with some failures still exits 0."""
    _EXIT["code"] = 1


def exit_code() -> int:
    """The exit status the app's process should end with."""
    return _EXIT["code"]


def is_rank_zero() -> bool:
    """Whether this process is rank 0 (always, outside distributed runs)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _leave_process_group(synchronize: bool) -> None:
    """After a DDP job: leave the process group, so the next job (or the interpreter's exit)
    does not meet gloo/NCCL threads still running. ``synchronize`` waits for the other ranks
    first; it is skipped after an error, when they may never arrive."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def validate_config(cfg: Any) -> None:
    """Fail fast, before any training, on invalid ``rectlaw`` values; the message names the key."""
    r = cfg.rectlaw
    try:
        budget = parse_budget(r.budget)
    except ValueError as err:
        raise ValueError(f"rectlaw.budget: {err}") from None
    if r.min_size < 1:
        raise ValueError(f"rectlaw.min_size must be >= 1, got {r.min_size}")
    if budget > 1 and r.min_size > budget:
        raise ValueError(f"rectlaw.min_size ({r.min_size}) is above rectlaw.budget ({r.budget})")
    from lightning_rectlaw.callback import SCHEDULES
    from lightning_rectlaw.selection import check_option, method_entry

    if r.schedule not in SCHEDULES:
        raise ValueError(f"rectlaw.schedule must be one of {SCHEDULES}, got {r.schedule!r}")
    try:
        method_entry(r.method)
        for key in ("k", "delta", "holdouts"):
            check_option(key, r.get(key, 3))
    except ValueError as err:
        raise ValueError(f"rectlaw.{str(err).lstrip('`').split('`')[0]}: {err}") from None


def run_candidate(cfg: Any, output_dir: str | Path, name: str) -> dict[str, Any]:
    """Run the plugin for one candidate and write ``candidate.json``; never raises for the job."""
    from hydra.utils import instantiate

    from lightning_rectlaw.callback import RectifiedLawCallback
    from lightning_rectlaw.datamodule import NestedSubsetDataModule

    out = Path(output_dir)
    record: dict[str, Any] = {"name": name, "status": "failed"}
    finished = False
    t0 = time.perf_counter()
    try:
        import lightning as L

        L.seed_everything(cfg.seed, workers=True)
        log.info(f"Instantiating datamodule <{cfg.data._target_}>")
        data = instantiate(cfg.data)
        log.info(f"Instantiating model <{cfg.model._target_}> for candidate {name!r}")
        model = instantiate(cfg.model)
        r = cfg.rectlaw
        dm = NestedSubsetDataModule(
            data, budget=r.budget, min_size=r.min_size, target_size=r.target_size, seed=r.seed
        )
        law = RectifiedLawCallback(
            method=r.method,
            k=r.k,
            delta=r.delta,
            holdouts=r.get("holdouts", 3),
            schedule=r.schedule,
            zero_shot=r.zero_shot,
            results_dir=out / "rectlaw",
        )
        log.info(f"Instantiating trainer <{cfg.trainer._target_}>")
        trainer = instantiate(cfg.trainer, callbacks=[law], logger=instantiate(cfg.logger))
        trainer.fit(model, datamodule=dm)
        res = law.result
        record.update(json.loads(res.to_json()))
        record["status"] = "ok" if res.status == "ok" else f"failed: {res.status}"
        record["num_params"] = sum(p.numel() for p in model.parameters())
        finished = True
    except Exception as err:  # noqa: BLE001 - recorded in the result file and the log, not swallowed
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        log.error(f"candidate {name!r} failed: {record['error']}\n{traceback.format_exc()}")
    finally:
        _leave_process_group(synchronize=finished)
    record["job_seconds"] = time.perf_counter() - t0
    if is_rank_zero():  # under DDP, Lightning relaunches this job for the other ranks
        atomic_write_text(out / CANDIDATE_FILE, json.dumps(record, indent=2, default=str))
    return record
