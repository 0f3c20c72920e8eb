"""The selectors: the registry every entry point reads (``METHODS``, ``select``), AtS and
``robust_ats``, the baselines, the ``Selection`` they return, one candidate's curve prediction
(``predict_curve``) and the record a measured candidate is written as, with its ``Status``.

What is exported here is the layer's public surface; the helpers the other layers share (``method_entry``,
``all_options``, ``calibrate_ats``, ``prediction_curve``, ...) are imported from their modules.

Imports only :mod:`lightning_rectlaw.core`; no framework."""

from lightning_rectlaw.selection.ats import accept_then_stop
from lightning_rectlaw.selection.curve import CurvePrediction, predict_curve
from lightning_rectlaw.selection.record import (
    BITS_PER_BYTE,
    CANDIDATE_FILE,
    RESULT_FILE,
    CandidateRecord,
    Incomparable,
    RectifiedLawResult,
    incomparable,
    loss_table,
)
from lightning_rectlaw.selection.registry import DEFAULT_METHOD, METHODS, Method, select
from lightning_rectlaw.selection.scores import CandidateScore, Selection
from lightning_rectlaw.selection.status import Status

__all__ = [
    "BITS_PER_BYTE",
    "CANDIDATE_FILE",
    "DEFAULT_METHOD",
    "METHODS",
    "RESULT_FILE",
    "CandidateRecord",
    "CandidateScore",
    "CurvePrediction",
    "Incomparable",
    "Method",
    "RectifiedLawResult",
    "Selection",
    "Status",
    "accept_then_stop",
    "incomparable",
    "loss_table",
    "predict_curve",
    "select",
]
