"""What the callback checks before any training (the subsets, the Trainer's limits, the strategy)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_warn

from lightning_rectlaw.plugin.datamodule import NestedSubsetDataModule
from lightning_rectlaw.selection import METHODS


def check_enough_subsets(dm: NestedSubsetDataModule, method: str, options: dict, zero_shot: bool) -> None:
    """Before any training: the subsets the budget allows can feed the method at all."""
    entry = METHODS[method]
    need = entry.min_points(entry.resolve(method, options))
    have = len(dm.sizes) + int(zero_shot and entry.zero_shot_point)
    if have < need:
        counted = " (the zero-shot loss included)" if zero_shot and entry.zero_shot_point else ""
        raise ValueError(
            f"the budget {dm.budget!r} and min_size={dm.min_size} give {len(dm.sizes)} subset(s) "
            f"{dm.sizes}{counted}, but `method={method!r}` needs {need} points: lower min_size or "
            "raise the budget"
        )


def check_trains_and_validates(trainer: L.Trainer) -> None:
    """Before any training: the subset runs inherit the Trainer's limits, so a Trainer that trains nothing
    would score the untrained model at every size, and one that never validates has no loss to score."""
    off = [name for name in ("max_epochs", "max_steps", "limit_train_batches") if getattr(trainer, name) == 0]
    if off:
        raise ValueError(
            f"the Trainer's {' and '.join(f'{n}=0' for n in off)} trains nothing, and the subset runs "
            "inherit it: every subset would score the untrained model; set it above 0"
        )
    if trainer.limit_val_batches == 0:
        raise ValueError(
            "the Trainer's limit_val_batches=0 turns validation off, and the subset runs inherit it: "
            "every subset is scored on the validation set; remove limit_val_batches or set it above 0"
        )


def check_sees_every_subset(trainer: L.Trainer, dm: NestedSubsetDataModule) -> None:
    """Warn, before any training, when a step or batch cap stops the larger subsets short of
    one pass (``max_steps=5`` or ``limit_train_batches=2``, common while debugging): those subsets
    then train on the same number of examples, and their losses say nothing about their size."""
    per_step = dm.batch_size * trainer.accumulate_grad_batches * trainer.world_size
    caps = {}
    if trainer.max_steps is not None and trainer.max_steps > 0:
        caps["max_steps"] = (trainer.max_steps, trainer.max_steps * per_step)
    limit = trainer.limit_train_batches
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        caps["limit_train_batches"] = (limit, limit * dm.batch_size * trainer.world_size)
    for name, (value, examples) in caps.items():
        short = [size for size in dm.sizes if size > examples]
        if short:
            rank_zero_warn(
                f"[rectlaw] the Trainer's {name}={value} stops training after {examples} examples, "
                f"before the subsets of {', '.join(map(str, short))} examples are seen once: they "
                "train on as many examples as a smaller subset, and the curve cannot tell their sizes "
                f"apart. For a measurement, remove {name} (train by max_epochs) or lower the budget",
                category=UserWarning,
            )


def check_strategy(trainer: L.Trainer) -> None:
    """Single device, or DDP whose processes already exist (``strategy="ddp"``, torchrun, Slurm):
    the subset Trainers join that process group. Spawn-based DDP would spawn again from inside."""
    strategy = trainer.strategy
    if trainer.world_size == 1 or (
        isinstance(strategy, DDPStrategy) and strategy.cluster_environment.creates_processes_externally
    ):
        return
    raise ValueError(
        f"RectifiedLawCallback supports single-device and DDP training, not {type(strategy).__name__}"
        f"{' with spawned processes' if isinstance(strategy, DDPStrategy) else ''}; use "
        "strategy='ddp' (not 'ddp_spawn'/'ddp_notebook'), or one device per candidate "
        "(Hydra's joblib/submitit launchers with devices=1)"
    )
