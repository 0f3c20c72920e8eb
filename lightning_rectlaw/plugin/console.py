"""What the plugin prints: its own log lines once (:func:`info`, through the ``lightning_rectlaw`` logger),
one progress bar over the subset runs (:class:`SubsetProgress`), and none of the per-Trainer chatter of the
subset Trainers (:func:`quiet_lightning`)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

log = logging.getLogger("lightning_rectlaw")


class _Fallback(logging.StreamHandler):
    """Prints a record only when the root logger has no handler of its own to print it (a plain script)."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


if not any(isinstance(h, _Fallback) for h in log.handlers):
    _handler = _Fallback()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(_handler)
if log.level == logging.NOTSET:
    log.setLevel(logging.INFO)


def info(message: str, *, level: int = logging.INFO) -> None:
    """Log ``[rectlaw] message`` once, from rank 0 only."""
    # Not Lightning's @rank_zero_only: that needs torch at import; the resume cache imports this without.
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        log.log(level, f"[rectlaw] {message}")


_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's INFO chatter off inside the block ("GPU available", tips, "`Trainer.fit` stopped"
    once per subset Trainer); WARNING and above still shown."""
    _ignore_small_subset_advice()
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved):
            lg.setLevel(level)


_ADVICE = r"The number of training batches .* is smaller than the logging interval"


def _ignore_small_subset_advice() -> None:
    """Small subsets have few batches by design: Lightning's advice to log less often is noise.
    The filter is added once for the process (``warnings.catch_warnings`` around each run would
    reset the once-per-place memory of every other warning, and repeat them per subset)."""
    import warnings

    if not any(f[0] == "ignore" and getattr(f[1], "pattern", None) == _ADVICE for f in warnings.filters):
        warnings.filterwarnings("ignore", message=_ADVICE)


def bar_style(trainer: Any) -> str | None:
    """``"rich"``, ``"tqdm"`` or ``None`` (no bar): the kind of progress bar the user's Trainer has."""
    bar = getattr(trainer, "progress_bar_callback", None)
    if bar is None or not trainer.is_global_zero:
        return None
    from lightning.pytorch.callbacks import RichProgressBar

    return "rich" if isinstance(bar, RichProgressBar) else "tqdm"


class SubsetProgress:
    """One progress bar over the subset runs of a measurement, in training examples (the unit in which the
    runs' cost is roughly constant, so its time-left estimate is steady). Without a bar (``style=None``) each
    run is one log line instead, with the time left. ``start(label, work)`` begins a run of ``work`` examples
    (subset size × epochs); ``fraction(f)`` moves within it; ``finish()`` completes it. :meth:`callback` gives
    the Lightning callback that reports a subset Trainer's progress (optimizer steps done out of
    ``estimated_stepping_batches``)."""

    def __init__(self, style: str | None, name: str | None = None) -> None:
        self.style, self.name = style, name
        self.total = self.done = self._work = self._started = 0.0
        self._seconds_per_example: float | None = None  # the last run's pace
        self._bar: Any = None
        self._rich: Any = None

    def open(self, total: float) -> None:
        """Show the bar, for ``total`` training examples."""
        self.total = int(round(total))
        if self.style == "rich":
            from rich.markup import escape
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} examples"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._rich.start()
            self._task = self._rich.add_task(escape(self._label("")), total=self.total)
        elif self.style == "tqdm":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                desc=self._label(""),
                unit="ex",
                dynamic_ncols=True,
                mininterval=0.2 if sys.stderr.isatty() else 30.0,  # a log file gets few updates
                smoothing=0.1,
                leave=True,
                file=sys.stderr,
            )

    def _label(self, text: str) -> str:
        head = f"[rectlaw] {self.name}" if self.name else "[rectlaw]"
        return f"{head} {text}".rstrip()

    def start(self, label: str, work: float) -> None:
        self._work = float(work)
        if self.style is None and work > 0:
            self._line(label)
        self._started = time.perf_counter()
        self._show(self.done, label)

    def _line(self, label: str) -> None:
        """Without a bar, one log line per run, named, with the time left at the last run's pace
        (jobs side by side in one terminal interleave whole lines, not redrawn bars)."""
        if self._seconds_per_example is not None:
            left = round(self._seconds_per_example * max(self.total - self.done, 0.0))
            label += f", about {timedelta(seconds=left)} left"  # H:MM:SS, as the bars show it
        info(f"{self.name} {label}" if self.name else label)

    def fraction(self, f: float) -> None:
        self._show(self.done + min(max(f, 0.0), 1.0) * self._work)

    def finish(self, postfix: str | None = None) -> None:
        if self._work > 0:
            self._seconds_per_example = (time.perf_counter() - self._started) / self._work
        self.done += self._work
        self._work = 0.0
        self._show(self.done, postfix=postfix)

    def close(self) -> None:
        """Stop the bar; the total shrinks to what ran (AtS may stop before the smallest sizes)."""
        if self._bar is not None:
            self._bar.total = self._bar.n = int(round(self.done))
            self._bar.refresh()
            self._bar.close()
        if self._rich is not None:
            self._rich.update(self._task, total=self.done, completed=self.done)
            self._rich.stop()
        self._bar = self._rich = None

    def _show(self, n: float, label: str | None = None, postfix: str | None = None) -> None:
        if self._bar is not None:
            if label is not None:
                self._bar.set_description_str(self._label(label), refresh=False)
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(int(round(n)) - self._bar.n)  # whole examples
        elif self._rich is not None:
            from rich.markup import escape

            kw = {} if label is None else {"description": escape(self._label(label))}
            self._rich.update(self._task, completed=n, **kw)

    def callback(self):
        """A Lightning callback that moves this bar as a subset Trainer trains."""
        from lightning.pytorch.callbacks import Callback

        progress = self

        class _Report(Callback):
            steps = 0.0

            def on_train_start(self, trainer, *_args: Any) -> None:
                self.steps = float(trainer.estimated_stepping_batches)  # computed once per run

            def on_train_batch_end(self, trainer, *_args: Any) -> None:
                if 0 < self.steps < float("inf"):
                    progress.fraction(trainer.global_step / self.steps)

        return _Report()
