"""The selectors: the registry every entry point reads (``METHODS``, ``select``), AtS and
``robust_ats``, the baselines, the ``Selection`` they return, one candidate's curve prediction
(``predict_curve``) and the record a measured candidate is written as.

Imports only :mod:`lightning_rectlaw.core`; no framework.
"""

from lightning_rectlaw.selection.ats import SPREAD, accept_then_stop, ats_stopped, calibrate_ats
from lightning_rectlaw.selection.curve import CurvePrediction, predict_curve
from lightning_rectlaw.selection.record import (
    BITS_PER_BYTE,
    CANDIDATE_FILE,
    RESULT_FILE,
    CandidateRecord,
    Incomparable,
    RectifiedLawResult,
    Status,
    incomparable,
    loss_table,
    tokenizer_label,
)
from lightning_rectlaw.selection.registry import (
    DEFAULT_METHOD,
    METHODS,
    Method,
    check_option,
    method_entry,
    select,
)
from lightning_rectlaw.selection.scores import CandidateScore, Curve, Selection, prediction_curve

__all__ = [
    "BITS_PER_BYTE",
    "DEFAULT_METHOD",
    "METHODS",
    "CANDIDATE_FILE",
    "RESULT_FILE",
    "SPREAD",
    "CandidateRecord",
    "CandidateScore",
    "Curve",
    "CurvePrediction",
    "Incomparable",
    "Method",
    "RectifiedLawResult",
    "Selection",
    "Status",
    "accept_then_stop",
    "ats_stopped",
    "calibrate_ats",
    "incomparable",
    "loss_table",
    "check_option",
    "method_entry",
    "predict_curve",
    "prediction_curve",
    "select",
    "tokenizer_label",
]
