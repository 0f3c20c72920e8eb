"""A sweep's results for people: the records of its job directories, the selection summary
(markdown, CSV, JSON, figure, TensorBoard) and its one-line verdict.

Imports the schedule, selection and core layers, and the plugin's resume cache to read what an
unfinished job measured; no Lightning or Hydra at import.
"""

from lightning_rectlaw.report.collect import collect_results
from lightning_rectlaw.report.summary import NothingRankedError, verdict, write_summary

__all__ = ["NothingRankedError", "collect_results", "verdict", "write_summary"]
