"""The selectors: the registry every entry point reads (``METHODS``, ``select``), AtS and
``robust_ats``, the baselines, the ``Selection`` they return, one candidate's curve prediction
(``predict_curve``) and the record a measured candidate is written as.

Imports only :mod:`lightning_rectlaw.core`; no framework.
"""
