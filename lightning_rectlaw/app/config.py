"""The typed schema of the app's ``rectlaw`` config group, registered in Hydra's ConfigStore.

With it a wrong type fails when Hydra composes the config and names the key
(``rectlaw.k=abc``: "Value 'abc' ... could not be converted to Integer, full_key: rectlaw.k"),
before anything is instantiated. Valid values are checked by the objects themselves when the app
builds them (``RectifiedLawCallback``, ``NestedSubsetDataModule``), before any training."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from lightning_rectlaw.app.jobdir import register_resolver
from lightning_rectlaw.core.budget import SWEEP_MIN_SIZE
from lightning_rectlaw.selection.registry import DEFAULT_METHOD, all_options


@dataclass
class _Settings:
    """The app's own settings; :func:`rectlaw_schema` adds one key per method option."""

    budget: Any = 2048  # examples (> 1) or a fraction of the target size ("1/8")
    min_size: int = SWEEP_MIN_SIZE
    target_size: Optional[int] = None  # noqa: UP045 - OmegaConf reads Optional, not `X | None`
    seed: int = 0
    method: str = DEFAULT_METHOD
    schedule: str = "auto"
    monitor: str = "auto"  # val_bpb where the module logs it, else val_loss; or a metric's name
    # True, unlike the callback's default: the summary's plots and `ourfit` use the zero-shot loss,
    # and a sweep's jobs measure it once each (the callback alone leaves that choice to its user)
    zero_shot: bool = True
    continue_fit: bool = False
    level: float = 0.95
    checkpoint_every: Optional[float] = 600.0  # noqa: UP045
    progress: str = "auto"  # auto (a bar; lines under a launcher running jobs side by side) or lines
    # import paths of your callbacks (under `callbacks:`) that change training: each subset run gets a copy
    subset_callbacks: list[str] = field(default_factory=list)
    datamodule: Any = None  # the NestedSubsetDataModule node (_target_), built from the keys above
    callback: Any = None  # the RectifiedLawCallback node (_target_)


def rectlaw_schema() -> type:
    """The schema of ``conf/rectlaw/*.yaml``: the subset schedule, the selector (``rectlaw.method``)
    and every option of every registered method (``rectlaw.k``, ``rectlaw.threshold``: see
    ``rectlaw methods``) with the registry's defaults; a job gives the callback its method's.

    Raises:
        ValueError: an option named as one of the app's own keys (``seed``): rename the option."""
    options = all_options()
    if clash := {f.name for f in fields(_Settings)} & set(options):
        raise ValueError(
            f"method option(s) {sorted(clash)} clash with the app's own `rectlaw` keys: rename them"
        )
    return make_dataclass(
        "RectlawConf",
        [(o.name, o.type, field(default=o.default)) for o in options.values()],
        bases=(_Settings,),
    )


def register_configs() -> None:
    """Register the schema as ``rectlaw/schema`` (``conf/rectlaw/default.yaml`` extends it), built
    from the methods registered now, and the job directories' resolver."""
    ConfigStore.instance().store(group="rectlaw", name="schema", node=rectlaw_schema())
    register_resolver()
