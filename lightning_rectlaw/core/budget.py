"""What a data budget means, in one place.

A budget is the largest fine-tuning subset a selector may look at. It is given either as a **fraction of the
target size** (``"1/8"``, ``0.125``: any value up to 1) or as a **number of examples** (``204800``: any value
above 1). The target size is the full fine-tuning set the prediction is for: the table's largest size offline,
and for the plugin ``NestedSubsetDataModule(target_size=...)``, which defaults to the train set's length. This
is the paper's convention: ratio r means a budget of target / r."""

from __future__ import annotations

import math


class TableError(ValueError):
    """A loss table or a budget is malformed; the message names the row/column and the fix."""


#: The smallest subset by default: 16 examples, enough for a batch of a small model.
MIN_SIZE = 16
#: The smallest subset of a sweep's jobs (the app, ``adaptive_sweep``): 64, because a sweep runs
#: checkpoints whose losses on a few dozen examples are mostly noise, and each subset is a job's
#: overhead (a fresh Trainer); with the app's budget of 2048 it still runs six subsets.
SWEEP_MIN_SIZE = 64


def parse_budget(budget: float | str) -> float:
    """``"1/8"`` → 0.125, ``"0.125"`` → 0.125, ``"204800"`` → 204800.0; positive or an error.

    Raises:
        ValueError (a ``TableError``): not a ratio or a number, or not positive."""
    text = str(budget).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise TableError(f"budget {budget!r} is not a ratio like '1/8' or a size like '204800'") from None
    if not math.isfinite(value) or value <= 0:
        raise TableError(f"budget must be positive, got {budget!r}")
    return value


def budget_size(budget: float | str, target: float) -> float:
    """The budget in examples: a fraction (<= 1) of ``target``, or the number itself (> 1)."""
    value = parse_budget(budget)
    return value * float(target) if value <= 1 else value


def check_budget(budget: float | str, min_size: int) -> None:
    """A well-formed budget and a smallest subset that fits under it (an absolute budget)."""
    value = parse_budget(budget)
    if min_size < 1:
        raise ValueError(f"`min_size` must be at least 1, got {min_size}")
    if value > 1 and min_size > value:
        raise ValueError(
            f"`min_size` ({min_size}) is above the budget ({budget}); lower it or raise the budget"
        )


def subset_sizes(max_size: int, min_size: int) -> list[int]:
    """``max_size, max_size/2, max_size/4, ...`` (rounded down) while ``>= min_size``: the nested
    subsets a budget of ``max_size`` examples runs."""
    sizes, s = [], float(max_size)
    while math.floor(s) >= min_size:
        sizes.append(int(math.floor(s)))
        s /= 2
    return sizes
