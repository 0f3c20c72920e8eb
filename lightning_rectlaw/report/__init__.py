"""A sweep's results for people: the records of its job directories, the selection summary (markdown, CSV,
JSON, figure, TensorBoard), its one-line verdict and the lines naming the candidates it could not rank.

Imports the schedule, selection and core layers only (what an unfinished job measured is read with
``selection.record.finished_runs``); no Lightning or Hydra at import."""

from lightning_rectlaw.report.collect import collect_results
from lightning_rectlaw.report.summary import NothingRankedError, failures, verdict, write_summary

__all__ = ["NothingRankedError", "collect_results", "failures", "verdict", "write_summary"]
