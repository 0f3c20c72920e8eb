"""The typed schema of the app's ``rectlaw`` config group, registered in Hydra's ConfigStore.

With it a wrong type fails when Hydra composes the config and names the key
(``rectlaw.k=abc``: "Value 'abc' ... could not be converted to Integer, full_key: rectlaw.k"),
before anything is instantiated. Valid values are checked by the objects themselves when the app
builds them (``RectifiedLawCallback``, ``NestedSubsetDataModule``), before any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from lightning_rectlaw.app.jobdir import register_resolver


@dataclass
class RectlawConf:
    """``conf/rectlaw/*.yaml``: the subset schedule and the selector (see ``rectlaw methods``)."""

    budget: Any = 2048  # examples (> 1) or a fraction of the target size ("1/8")
    min_size: int = 64
    target_size: Optional[int] = None  # noqa: UP045 - OmegaConf reads Optional, not `X | None`
    seed: int = 0
    method: str = "robust_ats"
    k: int = 3
    delta: float = 5.0
    holdouts: int = 3
    schedule: str = "auto"
    monitor: str = "auto"  # val_bpb where the module logs it, else val_loss; or a metric's name
    zero_shot: bool = True
    continue_fit: bool = False
    level: float = 0.95
    checkpoint_every: Optional[float] = 600.0  # noqa: UP045
    progress: str = "auto"  # auto (a bar; lines under a launcher running jobs side by side) or lines
    # import paths of your callbacks (under `callbacks:`) that change training: each subset run gets a copy
    subset_callbacks: list[str] = field(default_factory=list)
    datamodule: Any = None  # the NestedSubsetDataModule node (_target_), built from the keys above
    callback: Any = None  # the RectifiedLawCallback node (_target_)


def register_configs() -> None:
    """Register the schema as ``rectlaw/schema`` (``conf/rectlaw/default.yaml`` extends it) and
    the job directories' resolver."""
    ConfigStore.instance().store(group="rectlaw", name="schema", node=RectlawConf)
    register_resolver()
