"""`RectifiedLawCallback`: measure a candidate's fine-tuning scaling curve inside the user's Trainer.

Mechanism (chosen deliberately over the in-loop road of Lightning's tuner callbacks, which snapshot and
restore private loop state and have a history of bugs there): in ``on_fit_start`` the callback snapshots the
module's weights and buffers and runs every subset with a **fresh ``Trainer``** built from the user's Trainer
settings (epochs/steps, precision, clipping, accumulation, accelerator, validation limits), then restores the
snapshot. A fresh Trainer gives each subset a fresh optimizer, scheduler, loop state and dataloaders; of the
user's callbacks, each run gets fresh copies of those that shape training only (``runs.SHAPES_TRAINING``,
``subset_callbacks``), so ModelCheckpoint never saves a subset model.

Single-device and DDP training are supported. Under DDP the subset runs happen in ``setup`` (before the module
is wrapped in ``DistributedDataParallel``) with DDP subset Trainers that reuse the process group; rank 0's
losses and cache decisions are broadcast so every rank follows the same schedule, and only rank 0 writes
files. Log the monitored metric with ``sync_dist=True`` (or a torchmetrics metric) so it is the loss over the
whole validation set."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.seed import isolate_rng
from typing_extensions import override

from lightning_rectlaw.core.files import atomic_write_text
from lightning_rectlaw.plugin.cache import RunCache
from lightning_rectlaw.plugin.checks import (
    check_enough_subsets,
    check_sees_every_subset,
    check_strategy,
    check_trains_and_validates,
)
from lightning_rectlaw.plugin.console import SubsetProgress, bar_style, info
from lightning_rectlaw.plugin.datamodule import NestedSubsetDataModule
from lightning_rectlaw.plugin.fingerprint import fingerprint_parts, train_digests
from lightning_rectlaw.plugin.loggers import log_result
from lightning_rectlaw.plugin.runs import (
    ModuleState,
    SubsetRuns,
    resolve_callback_classes,
    training_callbacks,
)
from lightning_rectlaw.selection import (
    DEFAULT_METHOD,
    METHODS,
    RESULT_FILE,
    RectifiedLawResult,
    predict_curve,
)
from lightning_rectlaw.selection.registry import method_entry

SCHEDULES = ("auto", "ats", "all", "pooled")
#: How the subset runs show their progress: ``"auto"`` draws the Trainer's kind of bar;
#: ``"lines"`` logs one line per subset instead (jobs that share one terminal).
PROGRESS = ("auto", "lines")


class RectifiedLawCallback(Callback):
    """Run a candidate on nested subsets, fit the rectified law and predict its full-data loss.

    Args:
        method: selector for the prediction (default ``"robust_ats"``: AtS on screened points
            with calibrated intervals; any of ``rectlaw methods``). With one candidate per
            Trainer the calibration uses this candidate's own backtests; ``rectlaw summarize``
            re-ranks a sweep's candidates jointly and gives each its probability of being best.
        schedule: the subsets run, largest first. ``"auto"``: every size for ``robust_ats``
            (screening and backtests read them all), the ``k + holdouts`` largest for ``pooled``
            (``"pooled"``), AtS's stop rule for ``ats``, every size otherwise; ``"ats"``: stop when AtS
            detects the phase transition; ``"all"``: every size down to ``min_size``.
        monitor: the metric the module logs during validation whose value is the test loss. ``"auto"``:
            ``"val_bpb"`` (bits per byte of the target text, which the shipped Hugging Face modules log and
            which compares candidates whose tokenizers differ) where the module logs it, else ``"val_loss"``;
            resolved on one validation batch of the untrained model before any training, and recorded as
            resolved in ``result.monitor``. Any other name is used as given.
        zero_shot: also measure the loss before fine-tuning (needed by the ``ourfit`` method and
            shown in the plots).
        continue_fit: after the subset runs, go on with the user's fit on the full train set from
            the original weights, as without the callback; else the Trainer stops (``should_stop``).
        results_dir: directory for per-subset results; with it set, a re-run skips subsets that
            already finished with the same model, data, seed and settings, and the result JSON is
            written there. Default ``None``: no resume; the result goes to the logger's directory
            (or the Trainer's ``default_root_dir``).
        level: coverage of the prediction interval.
        checkpoint_every: with ``results_dir``, a subset run saves a Lightning checkpoint at least this often
            (seconds of training), so a killed job or a Slurm requeue resumes that subset where it was;
            ``None`` disables it. The checkpoint is kept only until the subset finishes, under a name that
            includes the fingerprint.
        name: the candidate's name in the progress bar and the log lines.
        progress: ``"auto"``: one bar over all subset runs, of the Trainer's kind; ``"lines"``: no live bar,
            one log line per subset (named, with the time left), for jobs running side by side in one
            terminal, whose bars would overwrite each other (the sweep app sets it under the joblib launcher).
        subset_callbacks: classes (or import paths) of your own Trainer callbacks that change how the model
            trains; each subset run gets a fresh copy of those on the Trainer, as it does of Lightning's
            (``BaseFinetuning``, ``EarlyStopping``, weight averaging...:
            :data:`~lightning_rectlaw.plugin.runs.SHAPES_TRAINING`). Other callbacks (checkpoints, loggers,
            monitors) are not given to the subset runs; a warning names those that are not Lightning's.
        **options: the method's options, by name (``rectlaw methods`` lists them), e.g. AtS's ``k`` and
            ``delta`` (3 and 5, as in the paper); an option the method does not take is refused.

    With the Trainer's ``fast_dev_run``, every subset trains that many batches: the code paths
    are checked, nothing is measured, cached or written, and ``result.status`` says so.

    Console: the progress and one line with the prediction. Logging: through every logger of the
    Trainer, and each subset run's under ``subsets/`` (:mod:`~lightning_rectlaw.plugin.loggers`).

    Example::

        law = RectifiedLawCallback()
        trainer = L.Trainer(max_epochs=3, callbacks=[law])
        trainer.fit(model, datamodule=NestedSubsetDataModule(my_datamodule, budget=1/8))
        law.result.predicted_loss

    Raises:
        ValueError: bad options; the metric ``monitor`` never logged; a multi-device strategy other than DDP
            with externally created processes (FSDP, DeepSpeed, ``ddp_spawn``); too few subsets for the
            method; a Trainer that trains nothing (``max_epochs=0``, ``max_steps=0``,
            ``limit_train_batches=0``) or never validates (``limit_val_batches=0``); all before any training.
        TypeError: the Trainer's datamodule is not a :class:`NestedSubsetDataModule`."""

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        *,
        schedule: str = "auto",
        monitor: str = "auto",
        zero_shot: bool = False,
        continue_fit: bool = False,
        results_dir: str | Path | None = None,
        level: float = 0.95,
        checkpoint_every: float | None = 600.0,
        name: str | None = None,
        progress: str = "auto",
        subset_callbacks: Sequence[type[Callback] | str] = (),
        **options: Any,
    ) -> None:
        schedule = _checked_schedule(method, schedule, zero_shot, level)
        if progress not in PROGRESS:
            raise ValueError(f"`progress` must be one of {', '.join(PROGRESS)}, got {progress!r}")
        method_entry(method).resolve(method, options)  # refuses an option the method does not take
        self.method, self.schedule, self.options = method, schedule, dict(options)
        self.monitor, self.zero_shot, self.continue_fit = monitor, zero_shot, continue_fit
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.level, self.checkpoint_every, self.name, self.progress = level, checkpoint_every, name, progress
        self.subset_callbacks = resolve_callback_classes(subset_callbacks)
        self.result: RectifiedLawResult | None = None
        self._restored = False  # the result came from a checkpoint: keep it, do not re-measure
        self._unlogged: Path | None = None  # where the measured result waits to be logged

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
        # DDP: measured here, before the module is wrapped (the subset Trainers wrap it themselves)
        if trainer.world_size > 1:
            self._measure(trainer, pl_module)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size == 1:
            self._measure(trainer, pl_module)
        if not self.continue_fit:
            trainer.should_stop = True
            trainer.num_sanity_val_steps = 0  # nothing will be trained: no sanity check either
            # Lightning trains on until min_epochs/min_steps even when asked to stop.
            trainer.fit_loop.min_epochs = 0
            trainer.fit_loop.epoch_loop.min_steps = None

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._unlogged is not None and self.result is not None:
            log_result(trainer, self.result, self._unlogged)
        self._unlogged = None

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restored:
            # Resuming a fit from a checkpoint: the module holds fine-tuned weights now, and
            # measuring from them would overwrite the result with a meaningless one.
            self._restored = False
            info("keeping the result restored from the checkpoint; no subset is re-run")
            return
        dm = _nested_datamodule(trainer)
        smoke = self._checked(trainer, dm)
        out_dir = self.results_dir or Path(trainer.log_dir or trainer.default_root_dir)
        result = self._new_result(trainer, dm)
        # The RNG is isolated around the measurement and each run seeded from (seed, size): a
        # subset's loss does not depend on which others ran or were reused, and the user's own
        # fit (continue_fit=True) draws the same random numbers as without the callback.
        with isolate_rng(), dm.measuring():  # (hashing the validation batches draws from it too)
            self._run_subsets(trainer, pl_module, dm, result, smoke)
        if smoke:
            result.status = f"fast_dev_run: {smoke} batch(es) per subset, not a measurement"
            self.result = result
            info(result.headline(self.name))
            return
        self._finish(result)
        self.result = result
        if trainer.is_global_zero:
            atomic_write_text(out_dir / RESULT_FILE, result.to_json())
        self._unlogged = out_dir  # logged in on_fit_end, after the Trainer logged the model's hparams
        info(result.headline(self.name) + f"; {out_dir / RESULT_FILE}")

    def _checked(self, trainer: L.Trainer, dm: NestedSubsetDataModule) -> int:
        """Everything refused before training (``plugin.checks``); the batches of ``fast_dev_run``
        (0 without it: then every subset must also be seen whole)."""
        check_strategy(trainer)
        check_trains_and_validates(trainer)
        check_enough_subsets(dm, self.method, self.options, self.zero_shot)
        if smoke := int(trainer.fast_dev_run):
            rank_zero_warn(
                f"[rectlaw] fast_dev_run: each subset trains {smoke} batch(es) to check the code; "
                "nothing is measured, cached or predicted. Run without it for a prediction",
                category=UserWarning,
            )
        else:
            check_sees_every_subset(trainer, dm)
        return smoke

    def _new_result(self, trainer: L.Trainer, dm: NestedSubsetDataModule) -> RectifiedLawResult:
        """The result before any run: the method and its options, the target, where it runs."""
        return RectifiedLawResult(
            method=self.method,
            options=METHODS[self.method].resolve(self.method, self.options),
            target_size=dm.target,
            interval_level=self.level,
            device=str(trainer.strategy.root_device),
            visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(map(str, trainer.device_ids)),
            tokenizer=_tokenizer_info(dm),
        )

    def _run_subsets(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        dm: NestedSubsetDataModule,
        result: RectifiedLawResult,
        smoke: int,
    ) -> None:
        """Fill ``result``: the monitor resolved on the first validation, the resume cache keyed
        by it, the zero-shot loss and the subset runs; the module restored afterwards."""
        snapshot = ModuleState(pl_module)
        device = trainer.strategy.root_device
        shared = training_callbacks(trainer, self.subset_callbacks, ignore=(RectifiedLawCallback,))
        progress = SubsetProgress(bar_style(trainer) if self.progress == "auto" else None, self.name)
        runs = SubsetRuns(
            trainer,
            pl_module,
            dm,
            RunCache(None, {}),  # no results_dir: nothing to hash or reuse
            monitor=self.monitor,
            schedule=self.schedule,
            options=self.options,
            checkpoint_every=None if smoke else self.checkpoint_every,
            progress=progress,
            callbacks=shared,
        )
        try:
            progress.open(runs.work())
            if self.monitor == "auto" or not self.zero_shot:
                # One batch of the untrained model: "auto" must be resolved before the cache's
                # fingerprint hashes it (the zero-shot loss itself may come from that cache).
                runs.check_monitor()
            result.monitor = runs.monitor
            if self.results_dir is not None and not smoke:
                parts = fingerprint_parts(pl_module, dm, trainer, runs.monitor, snapshot, shared)
                runs.cache = RunCache(self.results_dir, parts, train_digests(dm))
                result.validation_data = parts["validation data"]
            if self.zero_shot:
                result.zero_shot_loss = runs.zero_shot(result)
            runs.run(result, snapshot)
        finally:
            progress.close()
            snapshot.restore(pl_module)
            pl_module.to(device)
            pl_module.trainer = trainer
            dm.use_subset(None)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"result": None if self.result is None else json.loads(self.result.to_json())}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        r = state_dict.get("result")
        self.result = None if r is None else RectifiedLawResult.from_dict(r)
        self._restored = self.result is not None

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
        for name in ("status", "predicted_loss", "interval", "law", "vanilla_law"):
            setattr(result, name, getattr(pred, name))
        result.prediction_curve = pred.curve
        result.outliers = {int(size): why for size, why in pred.outliers.items()}


def _nested_datamodule(trainer: L.Trainer) -> NestedSubsetDataModule:
    """The fit's datamodule, refused unless it is a :class:`NestedSubsetDataModule`."""
    dm = trainer.datamodule
    if dm is None:  # trainer.fit(model, train_dataloaders=..., val_dataloaders=...)
        raise TypeError(
            "RectifiedLawCallback needs the fit's data as a NestedSubsetDataModule, and this fit "
            "was given dataloaders: build one from their datasets, "
            "dm = NestedSubsetDataModule(LightningDataModule.from_datasets(train_loader.dataset, "
            "val_loader.dataset, batch_size=train_loader.batch_size), budget=1/8), then "
            "trainer.fit(model, datamodule=dm)"
        )
    if not isinstance(dm, NestedSubsetDataModule):
        raise TypeError(
            "RectifiedLawCallback needs the Trainer's datamodule to be a "
            "NestedSubsetDataModule: trainer.fit(model, datamodule="
            "NestedSubsetDataModule(your_datamodule, budget=1/8))"
        )
    return dm


def _tokenizer_info(dm: NestedSubsetDataModule) -> dict[str, str] | None:
    """The wrapped datamodule's ``tokenizer_info`` (``{"name", "sha256"}``: the shipped Hugging Face
    datamodules have it), or ``None`` when it has none: the tokenizer is then unknown."""
    info = getattr(dm, "tokenizer_info", None)  # the wrapper reads it from the wrapped datamodule
    if not isinstance(info, Mapping) or not info.get("sha256"):
        return None
    return {"name": str(info.get("name") or ""), "sha256": str(info["sha256"])}


def _checked_schedule(method, schedule, zero_shot, level) -> str:
    """Check the callback's settings against the method's registry entry; the schedule to run."""
    entry = method_entry(method)
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` should be one of {SCHEDULES}, got {schedule!r}")
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}")
    if "num_params" in entry.needs:
        raise ValueError(
            f"`method={method!r}` needs every candidate's parameter count and predicts no loss "
            f"from one curve; use it offline (`rectlaw select TABLE --method {method}`)"
        )
    if "zero_shot" in entry.needs and not zero_shot:
        raise ValueError(f"`method={method!r}` needs the zero-shot loss: set `zero_shot=True`")
    return entry.schedule if schedule == "auto" else schedule
