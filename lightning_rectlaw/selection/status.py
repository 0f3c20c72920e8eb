"""`Status`: what became of a candidate, the one place its words are written."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of a candidate: a record's, a result's and a row's ``status``.

    Code compares members (``record["status"] == Status.OK``), never text; files and rows write
    :meth:`because`'s text, which nothing reads back, so files written before keep loading.

    Members:
        OK: measured and predicted (in a selection: ranked).
        PENDING: nothing measured yet.
        FAILED: the job raised, or measured no prediction.
        INCOMPLETE: the job never wrote its result (killed, or still running).
        UNRANKABLE: the selector could not rank it (too few clean points, ...).

    Example::

        Status.FAILED.because("ValueError: boom")  # 'failed: ValueError: boom'
    """

    OK = "ok"
    PENDING = "pending"
    FAILED = "failed"
    INCOMPLETE = "incomplete"
    UNRANKABLE = "unrankable"

    def __str__(self) -> str:
        return self.value

    def because(self, why: object = None) -> str:
        """This status as files and rows write it: the value, then ``why`` after a colon; the
        value alone when there is no why."""
        return self.value if why is None or why == "" else f"{self.value}: {why}"
