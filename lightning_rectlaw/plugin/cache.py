"""The resume cache: finished subset runs under ``<results_dir>/rectlaw_runs/``, each stored with
the fingerprint of its computation (:mod:`~lightning_rectlaw.plugin.fingerprint`) and reused only
when that fingerprint is the same.

What an unfinished job had measured, the selection summary reads with
:func:`~lightning_rectlaw.selection.record.finished_runs`."""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Mapping
from pathlib import Path

from lightning_rectlaw.core.files import atomic_write_text
from lightning_rectlaw.plugin.console import info
from lightning_rectlaw.selection.record import RUNS_DIR


class RunCache:
    """Finished subset runs under ``directory/rectlaw_runs/size_<n>.json`` (no cache when ``None``)."""

    def __init__(
        self, directory: Path | None, parts: dict[str, str], train: Mapping[int, str] | None = None
    ) -> None:
        self.directory = None if directory is None else Path(directory) / RUNS_DIR
        self.common = parts
        self.train = dict(train or {})  # size -> hash of its train examples

    def parts_for(self, size: int) -> dict[str, str]:
        """The fingerprint's parts for the run of ``size`` (its own train examples included)."""
        return {**self.common, "train data": self.train.get(size, "")} if size else dict(self.common)

    def key_for(self, size: int) -> str:
        from lightning_rectlaw.plugin.fingerprint import digest  # torch, only when keys are needed

        return digest(sorted(self.parts_for(size).items()))[:16]

    def _path(self, size: int) -> Path:
        return self.directory / f"size_{size}.json"

    def get(self, size: int) -> tuple[float, float, float] | None:
        """``(loss, seconds, done)`` of the finished run of ``size`` (``done``: the share of its
        planned training it did), or ``None``; says why it retrains."""
        if self.directory is None or not self._path(size).exists():
            return None
        path = self._path(size)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            info(f"ignoring unreadable {path}; re-running that subset", level=logging.WARNING)
            return None
        if data.get("key") == self.key_for(size):
            info(f"size {size}: reusing the finished run in {path} (same fingerprint)", level=logging.DEBUG)
            return float(data["loss"]), float(data.get("seconds", 0.0)), float(data.get("done", 1.0))
        old = data.get("parts") or {}
        parts = self.parts_for(size)
        changed = [name for name, h in parts.items() if old.get(name) != h] or ["fingerprint format"]
        info(f"size {size}: retraining, the cached run had a different {', '.join(changed)}")
        return None

    def partial_dir(self, size: int) -> Path | None:
        """Where an unfinished run of ``size`` keeps its checkpoints (``None``: no cache)."""
        if self.directory is None:
            return None
        return self.directory / f"partial_{self.key_for(size)}_size_{size}"

    def put(self, size: int, loss: float, seconds: float, done: float = 1.0) -> None:
        """Store a finished run and drop its mid-run checkpoints."""
        if self.directory is None:
            return
        record = {
            "key": self.key_for(size),
            "parts": self.parts_for(size),
            "size": size,
            "loss": loss if math.isfinite(loss) else str(loss),
            "seconds": seconds,
            "done": done,
        }
        atomic_write_text(self._path(size), json.dumps(record, indent=1))
        shutil.rmtree(self.partial_dir(size), ignore_errors=True)
