"""One Hydra job = one candidate: validate the config, instantiate, run the plugin, write a result.

Every job writes ``candidate.json`` in its output directory, also when it fails (with the error),
so that the selection summary can rank the others: Hydra's basic launcher would otherwise stop
reporting at the first failed job and skip the end-of-sweep callbacks."""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from lightning_rectlaw.app.config import register_configs
from lightning_rectlaw.core.budget import check_budget
from lightning_rectlaw.core.files import atomic_write_text
from lightning_rectlaw.plugin.console import quiet_lightning
from lightning_rectlaw.selection import CANDIDATE_FILE, CandidateRecord, Status
from lightning_rectlaw.selection.registry import all_options, method_entry

log = logging.getLogger(__name__)
_EXIT = {"code": 0}
register_configs()  # the typed `rectlaw` schema, before Hydra composes the app's config


def mark_failed() -> None:
    """Make the process exit non-zero (:func:`exit_code`): a single run that failed, a sweep in
    which no candidate could be ranked, or one in which some candidate failed."""
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


def method_options(cfg: Any) -> dict[str, Any]:
    """The chosen method's options as the config sets them (``rectlaw.k``, ...; the schema has one
    key per option of every method, and the callback is given those of its method)."""
    return {name: cfg.rectlaw[name] for name in method_entry(cfg.rectlaw.callback.method).defaults}


def check_rectlaw(cfg: Any) -> None:
    """The ``rectlaw`` values every job gets, checked without building anything: a bad value is
    named by the key the user wrote (``rectlaw.method``), once, before any job is launched.

    Raises:
        ValueError: the first bad value, its key and the fix."""
    r = cfg.rectlaw
    checks = {
        "rectlaw.budget / rectlaw.min_size": lambda: check_budget(r.datamodule.budget, r.datamodule.min_size),
        "rectlaw.method": lambda: method_entry(r.callback.method),
        **{f"rectlaw.{o.name}": (lambda o=o: o.check(r[o.name])) for o in all_options().values()},
    }
    for key, check in checks.items():
        try:
            check()
        except ValueError as err:
            raise ValueError(f"{key}: {err}") from None


def build_callback(cfg: Any, results_dir: str | Path, name: str | None = None, **overrides: Any):
    """The callback from ``cfg.rectlaw.callback``, its values checked (:func:`check_rectlaw`):
    call it before anything heavy, so a bad value fails before any model is loaded, naming the
    key. ``name`` is the candidate's, for the progress bar and the result line; ``overrides``
    replace options of the node (the app's own decisions, e.g. ``progress``)."""
    from hydra.utils import instantiate

    check_rectlaw(cfg)
    log.debug(f"Instantiating callback <{cfg.rectlaw.callback._target_}>")
    options = method_options(cfg)
    return instantiate(cfg.rectlaw.callback, results_dir=Path(results_dir), name=name, **options, **overrides)


def candidate_name(cfg: Any, choices: Any) -> str:
    """A candidate's name: its checkpoint (hub id or path) where the model has one, else the name
    of its config in the ``model`` group (``choices``: Hydra's ``runtime.choices``)."""
    return str(cfg.model.get("model_name_or_path") or choices["model"])


def write_record(job_dir: str | Path, record: CandidateRecord) -> None:
    """Write a job's ``candidate.json`` (atomically)."""
    atomic_write_text(Path(job_dir) / CANDIDATE_FILE, json.dumps(record, indent=2, default=str))


def run_candidate(cfg: Any, output_dir: str | Path, name: str, **callback: Any) -> CandidateRecord:
    """Run the plugin for one candidate and write ``candidate.json``, also when a value is bad or
    the job fails; never raises for the job. The callback is built first (:func:`build_callback`);
    ``callback`` replaces options of its node (``progress``)."""
    from hydra.utils import instantiate

    out = Path(output_dir)
    record: CandidateRecord = {"name": name, "status": Status.FAILED}
    finished = False
    t0 = time.perf_counter()
    try:
        law = build_callback(cfg, out / "rectlaw", name, **callback)
        import lightning as L

        L.seed_everything(cfg.seed, workers=True, verbose=False)
        log.debug(f"Instantiating datamodule <{cfg.data._target_}>")
        data = instantiate(cfg.data)
        log.debug(f"Instantiating model <{cfg.model._target_}> for candidate {name!r}")
        model = instantiate(cfg.model)
        log.debug(f"Instantiating datamodule <{cfg.rectlaw.datamodule._target_}> around it")
        dm = instantiate(cfg.rectlaw.datamodule, datamodule=data)
        callbacks = [law]
        for key, node in (cfg.get("callbacks") or {}).items():
            log.debug(f"Instantiating callback {key} <{node._target_}>")
            callbacks.append(instantiate(node))
        log.debug(f"Instantiating trainer <{cfg.trainer._target_}>")
        with quiet_lightning():  # the device banner and tips, once per job: the result line says it
            trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=instantiate(cfg.logger))
        trainer.fit(model, datamodule=dm)
        res = law.result
        record.update(json.loads(res.to_json()))
        record["status"] = Status.OK if res.status == Status.OK else Status.FAILED.because(res.status)
        record["num_params"] = sum(p.numel() for p in model.parameters())
        if getattr(data, "truncated", None):  # SFT examples that lost prompt tokens to max_length
            record["truncated"] = dict(data.truncated)
        finished = True
    except Exception as err:  # noqa: BLE001 - recorded in the result file and the log, not swallowed
        record["status"] = Status.FAILED
        record["error"] = f"{type(err).__name__}: {err}"
        log.error(f"candidate {name!r} failed: {record['error']}\n{traceback.format_exc()}")
    finally:
        _leave_process_group(synchronize=finished)
    record["job_seconds"] = time.perf_counter() - t0
    if is_rank_zero():  # under DDP, Lightning relaunches this job for the other ranks
        write_record(out, record)
    return record
