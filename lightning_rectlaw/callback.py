"""`RectifiedLawCallback`: measure a candidate's fine-tuning scaling curve inside the user's Trainer.

Mechanism (chosen deliberately, see ../shared/STYLE.md on the tuner callbacks): in
``on_fit_start`` the callback snapshots the module's weights and runs every subset with a **fresh
``Trainer``** built from the user's Trainer settings (epochs/steps, precision, clipping,
accumulation, accelerator, validation limits), then restores the snapshot. A fresh Trainer gives
each subset a fresh optimizer, scheduler, loop state and dataloaders without touching Lightning's
private loop internals, which is where the in-loop tuner callbacks have had their bugs. The
user's own callbacks are not passed to the subset runs (so ModelCheckpoint never saves a subset
model) and keep working in the user's fit. After the runs the user's Trainer stops
(``trainer.should_stop``) unless ``continue_fit=True``, in which case it fine-tunes on the full
train set from the original weights as it would have without the callback.

Single-device and DDP training are supported. Under DDP the subset runs happen in ``setup``
(before the module is wrapped in ``DistributedDataParallel``) with DDP subset Trainers that reuse
the process group; rank 0's losses are broadcast so every rank follows the same schedule, and
only rank 0 writes files. Log the monitored metric with ``sync_dist=True`` (or a torchmetrics
metric) so it is the loss over the whole validation set.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.seed import isolate_rng
from typing_extensions import override

from lightning_rectlaw.cache import RunCache, fingerprint_parts, trainer_settings
from lightning_rectlaw.curve import predict_curve
from lightning_rectlaw.datamodule import NestedSubsetDataModule
from lightning_rectlaw.selection import DEFAULT_METHOD, METHODS, ats_stopped, check_option, method_entry
from lightning_rectlaw.table import atomic_write_text

__all__ = ["RectifiedLawCallback", "RectifiedLawResult"]

RESULT_FILE = "rectlaw_result.json"
SCHEDULES = ("auto", "ats", "all", "pooled")


@dataclass
class RectifiedLawResult:
    """What the callback measured and predicted for one candidate.

    Attributes:
        sizes, losses: subset sizes run (largest first) and their test losses (failed runs
            excluded; see ``failed``).
        zero_shot_loss: loss before fine-tuning, when measured.
        failed: subset size → reason, for runs that diverged (non-finite loss).
        outliers: subset size → reason, for finished runs the method left out as diverged
            (far above the zero-shot loss) or far off the curve; they stay in ``sizes``/``losses``.
        method, options: the selector used for the prediction and its options.
        target_size: the full fine-tuning set size predicted for.
        predicted_loss, interval: predicted test loss at ``target_size`` and its interval.
        prediction_curve: the method's own curve (``sizes``, ``losses``) up to the target: the
            prediction is its last point. ``None`` for methods without a curve.
        law: rectified law fitted to the clean points, for reference (``None`` with too few).
        vanilla_law: vanilla law fitted to the clean points, for reference.
        examples_processed: training examples seen across subset runs (size × epochs).
        seconds: wall time of the subset runs.
        status: ``"ok"`` or why no prediction could be made.
    """

    sizes: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    zero_shot_loss: float | None = None
    failed: dict[int, str] = field(default_factory=dict)
    outliers: dict[int, str] = field(default_factory=dict)
    method: str = DEFAULT_METHOD
    options: dict[str, Any] = field(default_factory=dict)
    target_size: int = 0
    predicted_loss: float | None = None
    interval: tuple[float, float] | None = None
    interval_level: float = 0.95
    prediction_curve: dict[str, list[float]] | None = None
    law: dict[str, float] | None = None
    vanilla_law: dict[str, float] | None = None
    examples_processed: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    status: str = "pending"

    def to_json(self) -> str:
        d = asdict(self)
        d["failed"] = {str(k): v for k, v in self.failed.items()}
        d["outliers"] = {str(k): v for k, v in self.outliers.items()}
        return json.dumps(d, indent=2, allow_nan=False, default=float)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RectifiedLawResult:
        d = dict(d)
        d["failed"] = {int(k): v for k, v in d.get("failed", {}).items()}
        d["outliers"] = {int(float(k)): v for k, v in d.get("outliers", {}).items()}
        if d.get("interval") is not None:
            d["interval"] = tuple(d["interval"])
        return cls(**d)


class RectifiedLawCallback(Callback):
    """Run a candidate on nested subsets, fit the rectified law and predict its full-data loss.

    Args:
        method: selector for the prediction (default ``"robust_ats"``: AtS on screened points
            with calibrated intervals; any of ``rectlaw methods``). With one candidate per
            Trainer the calibration uses this candidate's own backtests; ``rectlaw summarize``
            re-ranks a sweep's candidates jointly and gives each its probability of being best.
        k, delta: points AtS starts from and its stop threshold (default 3 and 5, as in the
            paper); ``k`` is also ``pooled``'s local line.
        holdouts: backtest depth of ``robust_ats`` and ``pooled`` (default 3).
        schedule: the subsets run, largest first. ``"auto"`` (default): every size for
            ``robust_ats`` (screening and backtests read them all), the ``k + holdouts`` largest
            for ``pooled`` (``"pooled"``), AtS's stop rule for ``ats``, every size otherwise;
            ``"ats"``: stop when AtS detects the phase transition; ``"all"``: every size down
            to ``min_size``.
        monitor: the metric the module logs during validation whose value is the test loss
            (default ``"val_loss"``).
        zero_shot: also measure the loss before fine-tuning (default ``False``; needed by the
            ``ourfit`` method and shown in the plots).
        continue_fit: after the subset runs, go on with the user's fit on the full train set from
            the original weights (default ``False``: stop the Trainer).
        results_dir: directory for per-subset results; with it set, a re-run skips subsets that
            already finished with the same model, data, seed and settings, and the result JSON is
            written there. Default ``None``: no resume; the result goes to the logger's directory
            (or the Trainer's ``default_root_dir``).
        level: coverage of the prediction interval (default 0.95).
        checkpoint_every: with ``results_dir``, a subset run saves a Lightning checkpoint at
            least this often (seconds of training, default 600), so a killed job or a Slurm
            requeue resumes that subset where it was; ``None`` disables it. The checkpoint is
            kept only until the subset finishes, under a name that includes the fingerprint.

    Example::

        law = RectifiedLawCallback()
        trainer = L.Trainer(max_epochs=3, callbacks=[law])
        trainer.fit(model, datamodule=NestedSubsetDataModule(my_datamodule, budget=1/8))
        law.result.predicted_loss

    Raises:
        ValueError: bad options; the metric ``monitor`` never logged; a multi-device strategy.
        TypeError: the Trainer's datamodule is not a :class:`NestedSubsetDataModule`.
    """

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        k: int = 3,
        delta: float = 5.0,
        holdouts: int = 3,
        schedule: str = "auto",
        monitor: str = "val_loss",
        zero_shot: bool = False,
        continue_fit: bool = False,
        results_dir: str | Path | None = None,
        level: float = 0.95,
        checkpoint_every: float | None = 600.0,
    ) -> None:
        entry = method_entry(method)
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` should be one of {SCHEDULES}, got {schedule!r}")
        for name, value in (("k", k), ("delta", delta), ("holdouts", holdouts)):
            check_option(name, value)
        if "num_params" in entry.needs:
            raise ValueError(
                f"`method={method!r}` needs every candidate's parameter count and predicts no loss "
                f"from one curve; use it offline (`rectlaw select TABLE --method {method}`)"
            )
        if "zero_shot" in entry.needs and not zero_shot:
            raise ValueError(f"`method={method!r}` needs the zero-shot loss: set `zero_shot=True`")
        if schedule == "auto":
            schedule = entry.schedule
        self.method, self.k, self.delta, self.schedule = method, int(k), float(delta), schedule
        self.holdouts = int(holdouts)
        self.monitor, self.zero_shot, self.continue_fit = monitor, zero_shot, continue_fit
        self.results_dir = Path(results_dir) if results_dir is not None else None
        if not 0 < level < 1:
            raise ValueError(f"`level` must be in (0, 1), got {level!r}")
        self.level = level
        self.checkpoint_every = checkpoint_every
        self.result: RectifiedLawResult | None = None
        self._restored = False  # the result came from a checkpoint: keep it, do not re-measure

    # --- hooks ---------------------------------------------------------------------------------

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(method=self.method, schedule=self.schedule, monitor=self.monitor)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        mine = [cb for cb in trainer.callbacks if isinstance(cb, RectifiedLawCallback)]
        if len(mine) > 1:
            raise ValueError(
                f"RectifiedLawCallback was given {len(mine)} times to one Trainer; give it once "
                "(one candidate, one schedule per Trainer; sweep methods offline with `rectlaw "
                "select` on the recorded losses)"
            )
        if stage != "fit":
            fn = getattr(stage, "value", stage)
            rank_zero_warn(
                f"RectifiedLawCallback measures only in `trainer.fit`; it does nothing in `trainer.{fn}`",
                category=UserWarning,
            )
            return
        # Under DDP the subset runs happen here: the process group exists but the module is not
        # wrapped in DistributedDataParallel yet, so the subset Trainers can wrap it themselves.
        if trainer.world_size > 1:
            self._measure(trainer, pl_module)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size == 1:
            self._measure(trainer, pl_module)
        if not self.continue_fit:
            trainer.should_stop = True
            # Lightning trains on until min_epochs/min_steps even when asked to stop.
            trainer.fit_loop.min_epochs = 0
            trainer.fit_loop.epoch_loop.min_steps = None

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restored:
            # Resuming a fit from a checkpoint: the module holds fine-tuned weights now, and
            # measuring from them would overwrite the result with a meaningless one.
            self._restored = False
            rank_zero_info("[rectlaw] keeping the result restored from the checkpoint; no subset is re-run")
            return
        dm = trainer.datamodule
        if not isinstance(dm, NestedSubsetDataModule):
            raise TypeError(
                "RectifiedLawCallback needs the Trainer's datamodule to be a "
                "NestedSubsetDataModule: trainer.fit(model, datamodule="
                "NestedSubsetDataModule(your_datamodule, budget=1/8))"
            )
        _check_strategy(trainer)
        self._check_enough_subsets(dm)
        out_dir = self._out_dir(trainer)
        snapshot = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        device = trainer.strategy.root_device
        result = RectifiedLawResult(
            method=self.method,
            options=self._method_options(),
            target_size=dm.target,
            interval_level=self.level,
            device=str(device),
        )
        # The RNG is isolated around the measurement and each run seeded from (seed, size): a
        # subset's loss does not depend on which others ran or were reused, and the user's own
        # fit (continue_fit=True) draws the same random numbers as without the callback.
        with isolate_rng():  # (hashing the validation batches draws from it too)
            cache = RunCache(
                self.results_dir, fingerprint_parts(pl_module, dm, trainer, self.monitor, snapshot)
            )
            try:
                if self.zero_shot:
                    run = lambda: self._validate(trainer, pl_module, dm)  # noqa: E731
                    result.zero_shot_loss = self._cached_or_run(trainer, cache, dm.seed, 0, result, run)
                self._run_subsets(trainer, pl_module, dm, result, cache, snapshot)
            finally:
                pl_module.load_state_dict(snapshot)
                pl_module.to(device)
                pl_module.trainer = trainer
                dm.use_subset(None)
        self._finish(result)
        self.result = result
        if trainer.is_global_zero:
            atomic_write_text(out_dir / RESULT_FILE, result.to_json())
        self._log(trainer, result)
        rank_zero_info(
            f"[rectlaw] predicted loss at {result.target_size} examples: "
            f"{result.predicted_loss} ({result.status}); written to "
            f"{out_dir / RESULT_FILE}"
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"result": None if self.result is None else json.loads(self.result.to_json())}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        r = state_dict.get("result")
        self.result = None if r is None else RectifiedLawResult.from_dict(r)
        self._restored = self.result is not None

    # --- subset runs ---------------------------------------------------------------------------

    def _run_subsets(self, trainer, pl_module, dm, result, cache, snapshot) -> None:
        sizes = dm.sizes
        if self.schedule == "pooled":
            sizes = sizes[: self.k + self.holdouts]
        per_example: float | None = None
        for i, size in enumerate(sizes, start=1):
            eta = "" if per_example is None else f", about {per_example * sum(sizes[i - 1 :]):.0f}s left"
            rank_zero_info(f"[rectlaw] subset {i}/{len(sizes)}: {size} examples{eta}")
            t0 = time.perf_counter()
            pl_module.load_state_dict(snapshot)
            run = lambda s=size: self._fit_subset(trainer, pl_module, dm, s, cache)  # noqa: E731
            loss = self._cached_or_run(trainer, cache, dm.seed, size, result, run)
            per_example = (time.perf_counter() - t0) / size
            result.examples_processed += size * _epochs(trainer, size, dm)
            if not math.isfinite(loss):
                result.failed[size] = f"diverged: {self.monitor}={loss}"
                rank_zero_warn(
                    f"[rectlaw] subset of {size} examples diverged ({self.monitor}="
                    f"{loss}); it is excluded from the fit"
                )
                continue
            result.sizes.append(size)
            result.losses.append(loss)
            if self.schedule == "ats" and self._transition_found(result):
                rank_zero_info(f"[rectlaw] phase transition detected at {size} examples; stopping (AtS)")
                break

    def _check_enough_subsets(self, dm: NestedSubsetDataModule) -> None:
        """Before any training: the subsets the budget allows can feed the method at all."""
        need = METHODS[self.method].min_points(
            METHODS[self.method].resolve(self.method, self._method_options())
        )
        have = len(dm.sizes) + int(self.zero_shot)
        if have < need:
            raise ValueError(
                f"the budget {dm.budget!r} and min_size={dm.min_size} give {len(dm.sizes)} subset(s) "
                f"{dm.sizes}, but `method={self.method!r}` needs {need} points: lower min_size or "
                "raise the budget"
            )

    def _transition_found(self, result: RectifiedLawResult) -> bool:
        if len(result.sizes) <= self.k:
            return False
        sizes = np.array(result.sizes[::-1], dtype=float)
        return ats_stopped(sizes, np.array(result.losses[::-1]), self.k, self.delta)

    def _fit_subset(self, trainer, pl_module, dm, size: int, cache: RunCache) -> float:
        dm.use_subset(size)
        partial = cache.partial_dir(size) if self.checkpoint_every is not None else None
        sub = self._subset_trainer(trainer, f"subset_{size}", partial)
        resume = partial / "last.ckpt" if partial is not None and (partial / "last.ckpt").exists() else None
        if resume is not None:
            rank_zero_info(f"[rectlaw] size {size}: resuming the interrupted run from {resume}")
        sub.fit(pl_module, datamodule=dm, ckpt_path=resume)
        pl_module.trainer = sub
        return self._validate(sub, pl_module, dm, reuse=True)

    def _validate(self, trainer, pl_module, dm, reuse: bool = False) -> float:
        runner = trainer if reuse else self._subset_trainer(trainer, "zero_shot")
        metrics = runner.validate(pl_module, dataloaders=dm.val_dataloader(), verbose=False)
        values = metrics[0] if metrics else {}
        if self.monitor not in values:
            raise ValueError(
                f"the metric {self.monitor!r} was never logged during validation "
                f"(logged: {sorted(values)}); log it with self.log({self.monitor!r}, "
                "...) in validation_step or set RectifiedLawCallback(monitor=...)"
            )
        return float(values[self.monitor])

    def _subset_trainer(self, trainer: L.Trainer, name: str, checkpoints: Path | None = None) -> L.Trainer:
        logger = False
        if isinstance(trainer.logger, TensorBoardLogger):
            logger = TensorBoardLogger(
                save_dir=trainer.logger.log_dir, name="subsets", version=name, default_hp_metric=False
            )
        callbacks = [TQDMProgressBar()] if trainer.progress_bar_callback is not None else []
        if checkpoints is not None:  # resumable mid-subset; removed once the subset is cached
            callbacks.append(
                ModelCheckpoint(
                    dirpath=checkpoints,
                    save_last=True,
                    save_top_k=0,
                    train_time_interval=timedelta(seconds=self.checkpoint_every),
                    enable_version_counter=False,
                )
            )
        root = trainer.strategy.root_device
        if trainer.world_size > 1:  # DDP: the same devices and nodes, the process group reused
            placement = {
                "devices": trainer.num_devices if root.type == "cpu" else trainer.device_ids,
                "num_nodes": trainer.num_nodes,
                "strategy": "ddp",
            }
        else:  # the very device the user's Trainer chose (e.g. devices=[1] stays on cuda:1)
            placement = {"devices": [root.index] if root.index is not None else 1}
        return L.Trainer(
            accelerator=root.type,
            **placement,
            **trainer_settings(trainer),  # the same list the resume fingerprint hashes
            num_sanity_val_steps=0,
            inference_mode=False,  # metric states must stay usable across validate and fit
            enable_checkpointing=checkpoints is not None,
            enable_progress_bar=trainer.progress_bar_callback is not None,
            enable_model_summary=False,
            logger=logger,
            callbacks=callbacks,
        )

    # --- results -------------------------------------------------------------------------------

    def _out_dir(self, trainer: L.Trainer) -> Path:
        if self.results_dir is not None:
            return self.results_dir
        return Path(trainer.log_dir or trainer.default_root_dir)

    def _cached_or_run(self, trainer: L.Trainer, cache: RunCache, seed: int, size: int, result, run) -> float:
        """Reuse the finished run of ``size`` when its fingerprint matches, else run it seeded
        from ``(seed, size)``; its original wall time is added to ``result.seconds`` either way.

        Under DDP every rank trains, and rank 0's loss and cache decision are broadcast so all
        ranks follow the same schedule; only rank 0 writes.
        """
        saved = cache.get(size) if trainer.is_global_zero else None
        if trainer.world_size > 1:
            saved = trainer.strategy.broadcast(saved, src=0)
        if saved is None:
            _seed_run(seed, size)
            t0 = time.perf_counter()
            loss = float(run())
            seconds = time.perf_counter() - t0
            if trainer.world_size > 1:
                loss = trainer.strategy.broadcast(loss, src=0)
            if trainer.is_global_zero:
                cache.put(size, loss, seconds)
        else:
            loss, seconds = saved
        result.seconds += seconds
        return loss

    def _finish(self, result: RectifiedLawResult) -> None:
        pred = predict_curve(
            result.sizes,
            result.losses,
            result.target_size,
            zero_shot=result.zero_shot_loss,
            method=self.method,
            level=self.level,
            **result.options,
        )
        result.status, result.predicted_loss, result.interval = (
            pred.status,
            pred.predicted_loss,
            pred.interval,
        )
        result.outliers = {int(size): why for size, why in pred.outliers.items()}
        result.prediction_curve, result.law, result.vanilla_law = pred.curve, pred.law, pred.vanilla_law

    def _method_options(self) -> dict[str, Any]:
        """The callback's settings that the method takes as options (the registry says which)."""
        return {
            name: getattr(self, name)
            for name in METHODS[self.method].options
            if name in ("k", "delta", "holdouts")
        }

    def _log(self, trainer: L.Trainer, result: RectifiedLawResult) -> None:
        logger = trainer.logger
        if logger is None:
            return
        exp = getattr(logger, "experiment", None)
        for size, loss in zip(result.sizes, result.losses):
            if hasattr(exp, "add_scalar"):
                exp.add_scalar("rectlaw/test_loss_vs_subset_size", loss, global_step=size)
        metrics = {"rectlaw/predicted_loss": result.predicted_loss or float("nan")}
        params = {
            "rectlaw/method": result.method,
            "rectlaw/target_size": result.target_size,
            "rectlaw/status": result.status,
        }
        for prefix, law in (("law", result.law), ("vanilla", result.vanilla_law)):
            for k, v in (law or {}).items():
                params[f"rectlaw/{prefix}_{k}"] = v
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics)
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(metrics)
        if hasattr(exp, "add_figure") and result.sizes:
            from lightning_rectlaw.plot import curve_figure

            exp.add_figure("rectlaw/fit", curve_figure({"candidate": result}))
        logger.save()


def _check_strategy(trainer: L.Trainer) -> None:
    """Single device, or DDP whose processes already exist (``strategy="ddp"``, torchrun, Slurm):
    the subset Trainers join that process group. Spawn-based DDP would spawn again from inside."""
    strategy = trainer.strategy
    if trainer.world_size == 1:
        return
    if isinstance(strategy, DDPStrategy) and strategy.cluster_environment.creates_processes_externally:
        return
    raise ValueError(
        f"RectifiedLawCallback supports single-device and DDP training, not {type(strategy).__name__}"
        f"{' with spawned processes' if isinstance(strategy, DDPStrategy) else ''}; use "
        "strategy='ddp' (not 'ddp_spawn'/'ddp_notebook'), or one device per candidate "
        "(Hydra's joblib/submitit launchers with devices=1)"
    )


def _epochs(trainer: L.Trainer, size: int, dm: NestedSubsetDataModule) -> int:
    if trainer.max_steps and trainer.max_steps > 0:
        return max(1, math.ceil(trainer.max_steps * dm.batch_size / size))
    return int(trainer.max_epochs or 1)


def _seed_run(seed: int, size: int) -> None:
    """Seed Python, numpy and torch (all devices) for the run of ``size`` from ``(seed, size)``."""
    import random

    value = (int(seed) * 1_000_003 + int(size)) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
