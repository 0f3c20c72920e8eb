"""lightning-rectlaw: choose the LLM to fine-tune with the rectified scaling law.

The law fitting and selectors (``law``, ``selection``, ``table``, ``metrics``, ``evaluate``) are
pure numpy/scipy. The Lightning plugin (``NestedSubsetDataModule``, ``RectifiedLawCallback``) is
imported lazily, so ``import lightning_rectlaw`` stays light for offline use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lightning_rectlaw.core.law import FitConvergenceWarning, FitResult, fit_law, fit_laws
from lightning_rectlaw.core.metrics import pearcorr, relacc
from lightning_rectlaw.core.screening import OutlierWarning, screen_outliers
from lightning_rectlaw.core.table import LossTable, TableError
from lightning_rectlaw.schedule.evaluate import evaluate
from lightning_rectlaw.selection import (
    DEFAULT_METHOD,
    METHODS,
    CurvePrediction,
    Method,
    RectifiedLawResult,
    Selection,
    predict_curve,
    select,
)

if TYPE_CHECKING:  # what editors and type checkers see of the lazy names below
    from lightning_rectlaw.hf.model import CausalLMModule, LMModule
    from lightning_rectlaw.hf.pairs import SFTDataModule
    from lightning_rectlaw.hf.text import TextDataModule
    from lightning_rectlaw.plugin.adaptive import AdaptiveSweep, adaptive_sweep
    from lightning_rectlaw.plugin.callback import RectifiedLawCallback
    from lightning_rectlaw.plugin.datamodule import NestedSubsetDataModule

__version__ = "0.1.0"  # the one version source (pyproject.toml reads it)

_LAZY = {
    "AdaptiveSweep": "lightning_rectlaw.plugin.adaptive",
    "adaptive_sweep": "lightning_rectlaw.plugin.adaptive",
    "NestedSubsetDataModule": "lightning_rectlaw.plugin.datamodule",
    "RectifiedLawCallback": "lightning_rectlaw.plugin.callback",
    "CausalLMModule": "lightning_rectlaw.hf.model",
    "LMModule": "lightning_rectlaw.hf.model",
    "SFTDataModule": "lightning_rectlaw.hf.pairs",
    "TextDataModule": "lightning_rectlaw.hf.text",
}

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "AdaptiveSweep",
    "CausalLMModule",
    "CurvePrediction",
    "FitConvergenceWarning",
    "FitResult",
    "LMModule",
    "LossTable",
    "Method",
    "NestedSubsetDataModule",
    "OutlierWarning",
    "RectifiedLawCallback",
    "RectifiedLawResult",
    "SFTDataModule",
    "Selection",
    "TableError",
    "TextDataModule",
    "adaptive_sweep",
    "evaluate",
    "fit_law",
    "fit_laws",
    "pearcorr",
    "predict_curve",
    "relacc",
    "screen_outliers",
    "select",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightning_rectlaw' has no attribute {name!r}")
