"""Hydra callback that writes the selection summary when a multirun ends."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lightning_rectlaw.app.job import check_rectlaw, is_rank_zero, mark_failed
from lightning_rectlaw.plugin.console import info
from lightning_rectlaw.report import NothingRankedError, failures, verdict, write_summary

log = logging.getLogger(__name__)


class SelectionSummaryCallback(Callback):
    """On ``on_multirun_end``, rank every candidate of the sweep directory (``rectlaw summarize``). When no
    candidate could be ranked (``NothingRankedError``) the summary is still written, the error logged with its
    fix last, and the process marked to exit non-zero (``examples/train.py`` and ``rectlaw sweep`` exit with
    it); when some failed, the others are ranked, the console prints ``failures`` and the process exits
    non-zero too."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check the ``rectlaw`` values once, before any job is launched (a bad value would fail every job
        alike); values swept on the command line are checked by each job. Hydra turns a callback's exception
        into a warning and goes on, so a bad value ends the process here (``SystemExit``, exit status 1), with
        the error on stderr."""
        try:
            check_rectlaw(config)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank_zero():  # a DDP rank Lightning relaunched: rank 0 writes the summary
            return
        try:
            paths = write_summary(config.hydra.sweep.dir)
        except NothingRankedError as err:
            for line in str(err).splitlines():  # the fix last
                log.error(line)
            mark_failed()
            return
        log.debug("Selection summary: " + ", ".join(str(p) for p in paths))
        info(verdict(paths[0]))  # the sweep's last line, unless some candidate failed
        left_out = failures(paths[0])
        for line in left_out:
            info(line, level=logging.WARNING)
        if left_out:
            mark_failed()
