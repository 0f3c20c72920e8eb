"""The selectors' options, each declared once: name, default, valid values and help.

A method's registry entry (:class:`~lightning_rectlaw.selection.registry.Method`) lists the
options it takes, and every entry point reads them from there; an option shared by several
methods (``k``) is one declaration, so it has one default everywhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np

from lightning_rectlaw.core.law import DEFAULT_HUBER_DELTA
from lightning_rectlaw.core.predictive import SCHEMES
from lightning_rectlaw.core.screening import SCREEN_FLOOR, SCREEN_THRESHOLD


@dataclass(frozen=True)
class Option:
    """One option of a selector.

    Attributes:
        name: the keyword, the same in ``select``, the callback, the app (``rectlaw.<name>``) and
            the command line (``--<name>``).
        default: its value when not set; its type is the option's type.
        help: one line for ``rectlaw methods`` and ``--help``.
        valid: whether a value is allowed (beyond its type).
        must_be: what ``valid`` asks, in words, for the error."""

    name: str
    default: Any
    help: str
    _: KW_ONLY
    valid: Callable[[Any], bool] = lambda v: True
    must_be: str = ""
    renamed_from: str | None = None  # its old name, still accepted with a DeprecationWarning

    @property
    def type(self) -> type:
        return type(self.default)

    def check(self, value: Any) -> Any:
        """``value``, or a ValueError naming the option and what it must be."""
        if not self.valid(value):
            raise ValueError(f"`{self.name}` must be {self.must_be}, got {value!r}")
        return value

    def parse(self, text: str) -> Any:
        """A value from the command line, of the option's type, checked."""
        if self.type is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"`{self.name}` must be true or false, got {text!r}")
            return self.check(text.lower() in ("true", "1"))
        try:
            value = self.type(text)
        except ValueError:
            raise ValueError(f"`{self.name}` must be {self.must_be}, got {text!r}") from None
        return self.check(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def integer(name: str, default: int, help: str, *, low: int | None = None, **kw: Any) -> Option:
    """An integer option, at least ``low`` when given."""
    if low is None:
        return Option(name, default, help, valid=_is_int, must_be="an integer", **kw)
    valid = lambda v: _is_int(v) and v >= low  # noqa: E731
    return Option(name, default, help, valid=valid, **{"must_be": f"an integer of at least {low}", **kw})


def real(name: str, default: float, help: str, *, positive: bool = True) -> Option:
    """A finite number, positive (or ``>= 0`` with ``positive=False``)."""
    test = (lambda v: _is_real(v) and v > 0) if positive else (lambda v: _is_real(v) and v >= 0)
    return Option(
        name, float(default), help, valid=test, must_be="a positive number" if positive else "a number >= 0"
    )


def flag(name: str, default: bool, help: str) -> Option:
    return Option(name, default, help, valid=lambda v: isinstance(v, bool), must_be="True or False")


def choice(name: str, default: str, choices: tuple[str, ...], help: str) -> Option:
    return Option(name, default, help, valid=lambda v: v in choices, must_be=f"one of {list(choices)}")


K = integer(
    "k",
    3,
    "points AtS starts from; pooled's local line",
    low=2,
    must_be="an integer of at least 2 (a line needs two points)",
)
DELTA = real("delta", 5.0, "AtS stops at a point this many residual standard deviations off the line")
HOLDOUTS = integer("holdouts", 3, "backtest depth: points held out of each curve's own backtests", low=1)
THRESHOLD = real(
    "threshold", SCREEN_THRESHOLD, "screening: a point this many robust scales off its curve is left out"
)
FLOOR = real(
    "floor", SCREEN_FLOOR, "screening: relative error below which no point is left out", positive=False
)
PROB_SEED = integer("prob_seed", 0, "seed of the Monte Carlo P(best)", renamed_from="seed")
FREE_ALPHA = flag("free_alpha", False, "fit the law's exponent alpha too (the paper fixes it to 1)")
HUBER_DELTA = real("huber_delta", DEFAULT_HUBER_DELTA, "Huber loss's delta of the law fit, in log loss")
MAX_ITER = integer("max_iter", 1000, "Levenberg-Marquardt iterations per start of the law fit", low=1)

# How `robust_ats` turns in-budget backtests into intervals and P(best) (`predictive.inflate`):
# backtests see only the early part of a curve and under-estimate far extrapolation errors, so
# a prior error rate widens them. The scheme and whether to centre on the backtests' mean error
# were chosen, and the rates fitted, by benchmarks/heldout.py (nested leave-one-table-out);
# docs/heldout.md reports the held-out figures.
SCHEME = choice(
    "scheme", "scale", tuple(SCHEMES), "how the backtests' error rate is widened (all candidates)"
)
CENTRE = flag("centre", False, "centre the intervals on the backtests' mean error")
TAU_ALL = real("tau_all", 1.7681, "prior error rate of the pooled spread (fitted held out)", positive=False)
OWN_SCHEME = choice("own_scheme", "prior", tuple(SCHEMES), "how each candidate's own error rate is widened")
TAU_OWN = real(
    "tau_own", 0.0306, "prior error rate of each candidate's own spread (fitted held out)", positive=False
)
