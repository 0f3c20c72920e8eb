"""Logging through every logger of the user's Trainer, with Lightning's public ``Logger`` API.

- :func:`subset_loggers`: the loggers of one subset run. TensorBoard and CSV loggers get a logger of
  the same kind in ``<log_dir>/subsets/<run>``; any other logger (MLflow, W&B, your own) is
  wrapped so the run's metrics go to the user's own run under the key prefix ``subsets/<run>/``.
- :func:`log_result`: the measured curve (``log_metrics({...}, step=size)``), the prediction and
  fitted parameters (hyperparameters merged with the model's, and metrics), and the figure: as
  an image where the logger takes images (TensorBoard, W&B, MLflow artifacts), and as a PNG file
  beside the result file otherwise."""

from __future__ import annotations

import io
from argparse import Namespace
from functools import cached_property
from pathlib import Path
from typing import Any

from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from typing_extensions import override

from lightning_rectlaw.core.files import atomic_write_bytes
from lightning_rectlaw.selection import RectifiedLawResult

#: The figure's file beside the result file, for loggers that take no images.
FIGURE_FILE = "rectlaw_fit.png"


class PrefixedLogger(Logger):
    """A subset run's view of a user's logger: metrics go to the user's run under ``prefix/``;
    hyperparameters are left to the user's own fit and the user's run is never finalized."""

    def __init__(self, logger: Logger, prefix: str) -> None:
        super().__init__()
        self.inner, self.prefix = logger, prefix.rstrip("/")

    @property
    @override
    def name(self) -> str | None:
        return self.inner.name

    @property
    @override
    def version(self) -> int | str | None:
        return self.inner.version

    @property
    @override
    def save_dir(self) -> str | None:
        return self.inner.save_dir

    @property
    def experiment(self) -> Any:
        """The user's experiment object (so a module's ``self.logger.experiment`` calls work)."""
        return getattr(self.inner, "experiment", None)

    @override
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.inner.log_metrics({f"{self.prefix}/{k}": v for k, v in metrics.items()}, step=step)

    @override
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        pass  # the same module's hyperparameters reach the user's run through the user's own fit

    @override
    def save(self) -> None:
        self.inner.save()

    @override
    def finalize(self, status: str) -> None:
        self.inner.save()  # the user's run goes on: finalizing is the user's Trainer's job


def subset_loggers(trainer: Any, run: str) -> list[Logger]:
    """Loggers for the subset run ``run`` (e.g. ``size_512``), one per logger of ``trainer``."""
    out: list[Logger] = []
    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            out.append(TensorBoardLogger(lg.log_dir, name="subsets", version=run, default_hp_metric=False))
        elif isinstance(lg, CSVLogger):
            out.append(CSVLogger(lg.log_dir, name="subsets", version=run))
        else:
            out.append(PrefixedLogger(lg, f"subsets/{run}"))
    return out


def log_result(trainer: Any, result: RectifiedLawResult, out_dir: Path) -> None:
    """Log ``result`` through every logger of ``trainer`` (rank 0 only, as Lightning's loggers)."""
    if not trainer.loggers or not trainer.is_global_zero:
        return
    curve = sorted(zip(result.sizes, result.losses))
    metrics = {"rectlaw/predicted_loss": result.predicted_loss}
    if result.interval is not None:
        metrics["rectlaw/interval_low"], metrics["rectlaw/interval_high"] = result.interval
    metrics = {k: float(v) for k, v in metrics.items() if v is not None}
    params: dict[str, Any] = {
        "rectlaw/method": result.method,
        "rectlaw/target_size": result.target_size,
        "rectlaw/status": str(result.status),  # the text: Lightning writes an Enum by its name
        **{f"rectlaw/{k}": v for k, v in result.options.items()},
    }
    for prefix, law in (("law", result.law), ("vanilla", result.vanilla_law)):
        params.update({f"rectlaw/{prefix}_{k}": v for k, v in (law or {}).items()})
    figure = _Figure(result, out_dir) if curve else None
    for lg in trainer.loggers:
        for size, loss in curve:
            lg.log_metrics({"rectlaw/test_loss_vs_subset_size": loss}, step=int(size))
        if isinstance(lg, TensorBoardLogger):  # its HPARAMS tab shows the prediction beside them
            lg.log_hyperparams({**dict(lg.hparams), **params}, metrics)
            # TensorBoardLogger writes hparams.yaml once, with what it had then: rewrite it merged
            save_hparams_to_yaml(Path(lg.log_dir) / lg.NAME_HPARAMS_FILE, lg.hparams)
        else:
            lg.log_hyperparams(params)
            if metrics:
                lg.log_metrics(metrics)
        if figure is not None:
            _log_figure(lg, figure)
        lg.save()


class _Figure:
    """The fit's figure, rendered once, as PNG bytes and, when some logger needs a file, as
    :data:`FIGURE_FILE` beside the result (written once)."""

    def __init__(self, result: RectifiedLawResult, out_dir: Path) -> None:
        from lightning_rectlaw.core.presentation.figures import curve_figure

        buf = io.BytesIO()
        curve_figure({"candidate": result}).savefig(buf, format="png", dpi=100)
        self.png = buf.getvalue()
        self._path = out_dir / FIGURE_FILE

    @cached_property
    def file(self) -> Path:
        """The PNG beside the result, written on first use."""
        atomic_write_bytes(self._path, self.png)
        return self._path


def _log_figure(lg: Logger, figure: _Figure) -> None:
    """The figure as an image where the logger takes images, else as the file beside the result."""
    exp = getattr(lg, "experiment", None)
    if isinstance(lg, TensorBoardLogger):
        import numpy as np
        from matplotlib.image import imread

        rgb = (imread(io.BytesIO(figure.png), format="png")[..., :3] * 255).astype(np.uint8)
        exp.add_image("rectlaw/fit", rgb, dataformats="HWC")
    elif callable(getattr(lg, "log_image", None)):  # W&B, Neptune: takes file paths
        lg.log_image(key="rectlaw/fit", images=[str(figure.file)])
    elif getattr(lg, "run_id", None) is not None and callable(getattr(exp, "log_artifact", None)):  # MLflow
        exp.log_artifact(lg.run_id, str(figure.file), artifact_path="rectlaw")
    else:
        figure.file  # noqa: B018 - the file beside the result is this logger's copy
