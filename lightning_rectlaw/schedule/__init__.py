"""How much each candidate runs: the adaptive rule (successive elimination on P(best)), the one
rounds driver that every adaptive sweep runs on, its offline replay on a loss table, and
``evaluate``, which scores selectors and schedules on a table.

Imports only :mod:`~lightning_rectlaw.selection` and :mod:`~lightning_rectlaw.core`; no framework."""
