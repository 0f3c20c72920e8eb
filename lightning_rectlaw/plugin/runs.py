"""The subset runs behind `RectifiedLawCallback`: fresh Trainers, the resume cache, progress."""

from __future__ import annotations

import copy
import importlib
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch import callbacks as lcb
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from lightning_rectlaw.plugin.cache import RunCache
from lightning_rectlaw.plugin.console import SubsetProgress, info, quiet_lightning
from lightning_rectlaw.plugin.datamodule import NestedSubsetDataModule
from lightning_rectlaw.plugin.fingerprint import trainer_settings
from lightning_rectlaw.plugin.loggers import subset_loggers
from lightning_rectlaw.selection import BITS_PER_BYTE, METHODS, RectifiedLawResult
from lightning_rectlaw.selection.ats import ats_stopped

#: What ``monitor="auto"`` resolves to: the first of these the module logs in validation.
AUTO_MONITORS = (BITS_PER_BYTE, "val_loss")


def _lightning_callbacks(names: str) -> tuple[type[Callback], ...]:
    """Lightning's callback classes of these (space-separated) names that this Lightning version has."""
    return tuple(getattr(lcb, name) for name in names.split() if hasattr(lcb, name))


#: Lightning callbacks that change how the model trains (a fine-tuning schedule that freezes and
#: unfreezes a backbone, early stopping, weight averaging (``WeightAveraging``: Lightning >= 2.5),
#: a schedule of gradient accumulation): each subset run gets a fresh copy of those on the user's
#: Trainer, so it trains as their fit does.
SHAPES_TRAINING = _lightning_callbacks(
    "BaseFinetuning EarlyStopping GradientAccumulationScheduler StochasticWeightAveraging WeightAveraging"
)
#: Lightning callbacks that watch, save or tune around training: the subset runs go without them.
_OBSERVES = _lightning_callbacks(
    "BasePredictionWriter BatchSizeFinder Checkpoint DeviceStatsMonitor LearningRateFinder "
    "LearningRateMonitor ModelSummary ProgressBar SpikeDetection ThroughputMonitor Timer"
)


class ModuleState:
    """A module's state to restore before each subset run and after the last: its ``state_dict``;
    the buffers registered with ``persistent=False``, which ``state_dict`` leaves out (a running
    statistic a module updates in training would otherwise carry from one subset run into the
    next, and into the user's own fit); which parameters are frozen (``requires_grad``: a module
    or a fine-tuning callback that unfreezes a backbone mid-training would otherwise start the
    next run unfrozen); and each submodule's train/eval mode. Copies on the CPU."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.saved = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        self.transient = {
            name: b.detach().to("cpu", copy=True)
            for name, b in module.named_buffers()
            if name not in self.saved
        }
        self.trainable = {name: p.requires_grad for name, p in module.named_parameters()}
        self.modes = {name: m.training for name, m in module.named_modules()}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state by name (what the resume fingerprint hashes)."""
        return {**self.saved, **self.transient}

    @property
    def frozen(self) -> list[str]:
        """The parameters that do not train (``requires_grad=False``), by name."""
        return [name for name, trains in self.trainable.items() if not trains]

    def restore(self, module: torch.nn.Module) -> None:
        module.load_state_dict(self.saved)
        current = dict(module.named_buffers())
        with torch.no_grad():
            for name, value in self.transient.items():
                buf = current.get(name)
                if buf is not None and buf.shape == value.shape:
                    buf.copy_(value)
                else:  # replaced or resized in training (a cache that grows): put the saved one back
                    owner, _, leaf = name.rpartition(".")
                    device = buf.device if buf is not None else value.device
                    setattr(module.get_submodule(owner), leaf, value.to(device, copy=True))
        for name, param in module.named_parameters():
            if name in self.trainable:
                param.requires_grad_(self.trainable[name])
        for name, sub in module.named_modules():
            if name in self.modes:
                sub.training = self.modes[name]


@dataclass(eq=False)
class SubsetRuns:
    """The subset runs of one measurement: each from the module's original weights, in a fresh Trainer
    built from the user's, reused from ``cache`` when provably the same computation."""

    trainer: L.Trainer
    pl_module: L.LightningModule
    dm: NestedSubsetDataModule
    cache: RunCache
    _: KW_ONLY
    monitor: str
    schedule: str
    options: Mapping[str, Any]  # the method's, resolved; the ats and pooled schedules read theirs
    checkpoint_every: float | None
    progress: SubsetProgress = field(default_factory=lambda: SubsetProgress(None))
    callbacks: Sequence[Callback] = ()  # pristine copies of the user's (training_callbacks)

    @property
    def sizes(self) -> list[int]:
        """The sizes the schedule may run, largest first (AtS may stop before the smallest)."""
        if self.schedule != "pooled":
            return self.dm.sizes
        return self.dm.sizes[: METHODS["pooled"].largest(self._options_of("pooled"))]

    def work(self) -> int:
        """Training examples of the whole schedule (size × epochs): the progress bar's total."""
        return sum(s * epochs(self.trainer, s, self.dm) for s in self.sizes)

    def zero_shot(self, result: RectifiedLawResult) -> float:
        """The loss before fine-tuning (size 0 in the cache)."""
        self.progress.start("zero-shot loss", 0)
        loss, _ = self._cached_or_run(0, result, lambda: (self._validate(self.trainer), 1.0))
        self.progress.finish()
        return loss

    def check_monitor(self) -> None:
        """One validation batch of the untrained model, before any training: a ``monitor`` the
        module never logs fails now, not after the largest subset has trained (the zero-shot
        loss, when measured, checks it anyway), and ``"auto"`` is resolved (``self.monitor``)."""
        with quiet_lightning():
            runner = subset_trainer(self.trainer, "monitor_check", callbacks=[])
            runner.limit_val_batches, runner.loggers = 1, []
            metrics = runner.validate(self.pl_module, datamodule=self.dm, verbose=False)  # as in a fit
        self._monitored(runner, metrics)

    def run(self, result: RectifiedLawResult, snapshot: ModuleState) -> None:
        """Run the schedule's subsets, largest first, filling ``result``."""
        sizes = self.sizes
        for i, size in enumerate(sizes, start=1):
            work = size * epochs(self.trainer, size, self.dm)
            self.progress.start(f"subset {i}/{len(sizes)} ({size})", work)
            snapshot.restore(self.pl_module)
            loss, done = self._cached_or_run(size, result, lambda s=size: self._fit_subset(s))
            result.examples_processed += round(work * done)
            self.progress.finish(postfix=f"loss at {size}: {loss:.4g}")
            info(f"subset of {size} examples: {self.monitor}={loss:.6g}", level=logging.DEBUG)
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
                info(f"phase transition detected at {size} examples; stopping (AtS)")
                break

    def _options_of(self, schedule: str) -> dict[str, Any]:
        """The options of the method a schedule is named after: the callback's where it sets them."""
        return {**METHODS[schedule].defaults, **self.options}

    def _transition_found(self, result: RectifiedLawResult) -> bool:
        k, delta = (self._options_of("ats")[name] for name in ("k", "delta"))
        if len(result.sizes) <= k:
            return False
        sizes = np.array(result.sizes[::-1], dtype=float)
        return ats_stopped(sizes, np.array(result.losses[::-1]), k, delta)

    def _fit_subset(self, size: int) -> tuple[float, float]:
        """Train the subset of ``size``; its final loss and the share of the planned training it
        did (below 1 when a shared EarlyStopping ended it)."""
        self.dm.use_subset(size)
        partial = self.cache.partial_dir(size) if self.checkpoint_every is not None else None
        final = _LastValidation(self.monitor)
        report = [self.progress.callback()] if self.progress.style is not None else []
        callbacks = [*(copy.deepcopy(cb) for cb in self.callbacks), final, *report]  # fresh copies per run
        sub = subset_trainer(self.trainer, f"size_{size}", partial, self.checkpoint_every, callbacks)
        resume = partial / "last.ckpt" if partial is not None and (partial / "last.ckpt").exists() else None
        if resume is not None:
            info(f"size {size}: resuming the interrupted run from {resume}")
        sub.fit(self.pl_module, datamodule=self.dm, ckpt_path=resume)
        self.pl_module.trainer = sub
        planned = sub.estimated_stepping_batches
        done = min(1.0, sub.global_step / planned) if math.isfinite(planned) and planned > 0 else 1.0
        if final.step == sub.global_step and final.value is not None:
            return final.value, done  # the fit validated the final weights already: no second pass
        return self._validate(sub, reuse=True), done

    def _validate(self, trainer, reuse: bool = False) -> float:
        runner = trainer if reuse else subset_trainer(trainer, "zero_shot", callbacks=[])
        metrics = runner.validate(self.pl_module, dataloaders=self.dm.val_dataloader(), verbose=False)
        return self._monitored(runner, metrics)

    def _monitored(self, runner: L.Trainer, metrics: list[dict[str, float]]) -> float:
        """The monitored loss of a validation's metrics (one dict per loader), or the error; the
        first validation resolves ``monitor="auto"`` for the runs that follow."""
        values = {k: v for per_loader in metrics for k, v in per_loader.items()}
        name = resolve_monitor(self.monitor, values)
        if name not in values:
            per_batch = name in runner.logged_metrics
            raise ValueError(_never_logged(name, values, per_batch, auto=self.monitor == "auto"))
        self.monitor = name
        return float(values[name])

    def _cached_or_run(self, size: int, result: RectifiedLawResult, run) -> tuple[float, float]:
        """Reuse the finished run of ``size`` when its fingerprint matches, else run it seeded from
        ``(seed, size)``; its original wall time is added to ``result.seconds`` either way. ``run`` returns,
        as this does, the loss and the share of planned training done (:meth:`_fit_subset`)."""
        trainer = self.trainer
        saved = self.cache.get(size) if trainer.is_global_zero else None
        if trainer.world_size > 1:
            saved = trainer.strategy.broadcast(saved, src=0)
        if saved is None:
            seed_run(self.dm.seed, size)
            t0 = time.perf_counter()
            with quiet_lightning():  # no banner, tip or "fit stopped" line per subset Trainer
                loss, done = run()
            loss, seconds = float(loss), time.perf_counter() - t0
            if trainer.world_size > 1:
                loss = trainer.strategy.broadcast(loss, src=0)
            if trainer.is_global_zero:
                self.cache.put(size, loss, seconds, done)
        else:
            loss, seconds, done = saved
            result.reused += int(size > 0)
        result.seconds += seconds
        return loss, done


def resolve_monitor(monitor: str, logged) -> str:
    """The metric ``monitor`` names among those a validation ``logged``: ``"auto"`` is the first
    of :data:`AUTO_MONITORS` logged (the last when none is); any other name is itself."""
    if monitor != "auto":
        return monitor
    return next((name for name in AUTO_MONITORS if name in logged), AUTO_MONITORS[-1])


def _never_logged(monitor: str, logged, per_batch: bool = False, auto: bool = False) -> str:
    """The error for a monitored metric missing from validation, with the fix for the likely cause
    (``per_batch``: it was logged, but only per batch; ``auto``: ``monitor="auto"`` looked for it)."""
    if per_batch:
        return (
            f"the metric {monitor!r} was logged per validation batch only (on_epoch=False), so there "
            f"is no loss over the validation set; log it with self.log({monitor!r}, loss, "
            "on_epoch=True), the default in validation_step"
        )
    per_loader = sorted(k for k in logged if k.startswith(f"{monitor}/dataloader_idx_"))
    fix = (
        f"with several validation loaders Lightning logs it per loader: choose the one that is "
        f"your test loss, e.g. RectifiedLawCallback(monitor={per_loader[0]!r})"
        if per_loader
        else f"log it with self.log({monitor!r}, ...) in validation_step or set "
        "RectifiedLawCallback(monitor=...)"
    )
    also = f", nor {AUTO_MONITORS[0]!r}, which monitor='auto' prefers" if auto else ""
    return (
        f"the metric {monitor!r} was never logged during validation{also} (logged: {sorted(logged)}); {fix}"
    )


class _LastValidation(Callback):
    """Records the monitored loss of the fit's last validation and the step it validated: when
    that is the final step, it is the loss of the final weights and needs no second pass."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.step: int | None = None
        self.value: float | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        self.step, self.value = trainer.global_step, None if value is None else float(value)


def training_callbacks(
    trainer: L.Trainer, extra: Sequence[type[Callback]] = (), ignore: Sequence[type[Callback]] = ()
) -> list[Callback]:
    """Fresh copies of the Trainer's callbacks that shape training (:data:`SHAPES_TRAINING`, and
    the classes in ``extra``), taken before any training, for the subset runs to copy again. Warns once
    about the others, not Lightning's observers nor ``ignore``: the subset runs train without them."""
    shared, left_out = [], []
    for cb in trainer.callbacks:
        if isinstance(cb, (*SHAPES_TRAINING, *extra)):
            try:
                shared.append(copy.deepcopy(cb))
            except Exception as err:
                raise ValueError(
                    f"each subset run needs a fresh copy of your {type(cb).__name__} callback, and "
                    f"copy.deepcopy failed ({type(err).__name__}: {err}); make it copyable (keep no "
                    "Trainer, module or open file on it before fit starts)"
                ) from err
        elif not isinstance(cb, (*_OBSERVES, *ignore)):
            left_out.append(type(cb))
    if left_out:
        names = ", ".join(sorted({c.__name__ for c in left_out}))
        paths = ", ".join(sorted({f"{c.__module__}.{c.__qualname__}" for c in left_out}))
        rank_zero_warn(
            f"[rectlaw] the subset runs train without your Trainer's callback(s) {names}. If one "
            "changes how the model trains (freezes layers, schedules the learning rate or the data), "
            f"give its class to RectifiedLawCallback(subset_callbacks=[{names}]) (in the app: "
            f"rectlaw.subset_callbacks=[{paths}]) and each subset run gets a fresh copy",
            category=UserWarning,
        )
    return shared


def resolve_callback_classes(classes: Sequence[type[Callback] | str]) -> tuple[type[Callback], ...]:
    """Callback classes, given as classes or import paths (``"my_pkg.callbacks.Unfreeze"``)."""
    out = []
    for item in classes:
        cls = item
        if isinstance(item, str):
            module, _, name = item.rpartition(".")
            try:
                cls = getattr(importlib.import_module(module), name) if module else None
            except (ImportError, AttributeError) as err:
                raise ValueError(
                    f"`subset_callbacks`: cannot import {item!r} ({type(err).__name__}: {err}); give the "
                    "full import path of a Callback class, e.g. 'my_project.callbacks.Unfreeze'"
                ) from err
        if not (isinstance(cls, type) and issubclass(cls, Callback)):
            raise ValueError(
                f"`subset_callbacks` takes Lightning Callback classes (or their import paths), got {item!r}"
            )
        out.append(cls)
    return tuple(out)


def subset_trainer(
    trainer: L.Trainer,
    name: str,
    checkpoints: Path | None = None,
    checkpoint_every: float | None = None,
    callbacks: list[Callback] | None = None,
) -> L.Trainer:
    """A fresh Trainer for one subset run: the user's settings (``fingerprint.TRAINER_SETTINGS``), the very
    devices it chose, loggers of the user's kinds under ``subsets/<name>``, no user callbacks, no progress bar
    of its own (``callbacks`` may report to the measurement's) and no model summary."""
    callbacks = list(callbacks or [])
    if checkpoints is not None:  # resumable mid-subset; removed once the subset is cached
        callbacks.append(
            ModelCheckpoint(
                dirpath=checkpoints,
                save_last=True,
                save_top_k=0,
                train_time_interval=timedelta(seconds=checkpoint_every or 0),
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
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=subset_loggers(trainer, name) or False,
        callbacks=callbacks,
    )


def epochs(trainer: L.Trainer, size: int, dm: NestedSubsetDataModule) -> int:
    if trainer.max_steps and trainer.max_steps > 0:
        return max(1, math.ceil(trainer.max_steps * dm.batch_size / size))
    return int(trainer.max_epochs or 1)


def seed_run(seed: int, size: int) -> None:
    """Seed Python, numpy and torch (all devices) for the run of ``size`` from ``(seed, size)``; not
    ``L.seed_everything``, whose ``PL_GLOBAL_SEED`` outlives the measurement and would change the seed
    of the user's own fit's ``DistributedSampler``."""
    value = (int(seed) * 1_000_003 + int(size)) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
