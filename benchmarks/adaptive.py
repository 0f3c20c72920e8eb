"""The adaptive schedule, held out: its rule is chosen on some tables and scored on the others.

    python benchmarks/adaptive.py            # about half a minute on 2 cores

For each held-out table (FLAN, WMT19, the two local zoos), among the variants of :data:`GRID`
(threshold x minimum points x floor x rungs), the one with the lowest mean compute on the *other*
tables among those that lose at most :data:`TOLERANCE` points of mean RelAcc against the full
schedule on every one of them is chosen; it is then scored on the held-out table. Budgets: the
table's ratios from 1/8 to 1/64 that leave at least 4 points (the zoos stop at 1/32). Compute is
the adaptive sweep's examples in percent of the full schedule's (the default, ``robust_ats``,
runs every in-budget size). Then the trade-off curve over the threshold, the other options at
the library's defaults, on every table.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
from heldout import load  # the held-out protocol's table loader (benchmarks/ is on the path)

from lightning_rectlaw.adaptive import (
    DEFAULT_FLOOR,
    DEFAULT_MIN_POINTS,
    DEFAULT_RULE,
    DEFAULT_RUNGS,
    RULES,
    simulate,
)
from lightning_rectlaw.metrics import relacc
from lightning_rectlaw.selection import select
from lightning_rectlaw.table import LossTable

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmark"
TABLES = {
    "FLAN": (SHARED / "flan.csv", (8, 16, 32, 64)),
    "WMT19": (SHARED / "wmt19.csv", (8, 16, 32, 64)),
    "zoo-stdlib": (ROOT / "data" / "zoo_stdlib.csv", (8, 16, 32)),
    "zoo-cross": (ROOT / "data" / "zoo_cross.csv", (8, 16, 32)),
}
THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3)
# rule, threshold, min_points, floor, rungs
GRID = list(itertools.product(RULES, THRESHOLDS, (3, 4), (1, 2), (4, 5)))
TOLERANCE = 0.5  # points of mean RelAcc a variant may lose on a training table


def score(table: LossTable, ratios, rule, threshold, min_points, floor, count) -> tuple:
    """Mean over budgets of: compute (% of the full schedule), full RelAcc, adaptive RelAcc; and
    the compute per budget."""
    truth = table.losses[:, -1]
    compute, full_acc, adaptive_acc = [], [], []
    for r in ratios:
        full = select(table, budget=table.max_size / r)
        run = simulate(
            table,
            table.max_size / r,
            prob_threshold=threshold,
            min_points=min_points,
            min_survivors=floor,
            count=count,
            rule=rule,
        )
        compute.append(100 * run.examples / full.examples)
        full_acc.append(relacc(truth[table.names.index(full.best)], truth))
        adaptive_acc.append(relacc(truth[table.names.index(run.selection.best)], truth))
    return float(np.mean(compute)), float(np.mean(full_acc)), float(np.mean(adaptive_acc)), compute


def main() -> None:
    warnings.simplefilter("ignore")
    tables = load(TABLES)
    results = {(name, v): score(t, ratios, *v) for name, (t, ratios) in tables.items() for v in GRID}
    axes = "rule x threshold x min_points x floor x rungs"
    print(f"{len(GRID)} variants ({axes}), chosen leave-one-table-out\n")
    print(
        "| held-out table | chosen (rule, threshold, min points, floor, rungs) | compute, % of full "
        "| RelAcc full | RelAcc adaptive |"
    )
    print("|---|---|---|---|---|")
    for held in tables:
        train = [n for n in tables if n != held]
        ok = [v for v in GRID if all(results[(n, v)][1] - results[(n, v)][2] <= TOLERANCE for n in train)]
        chosen = min(ok, key=lambda v: (np.mean([results[(n, v)][0] for n in train]), -v[3], v[2]))
        c, f, a, per = results[(held, chosen)]
        budgets = "/".join(f"{x:.0f}" for x in per)
        at = ", 1/".join(map(str, tables[held][1]))
        print(f"| {held} | {chosen} | {c:.0f}% ({budgets} at 1/{at}) | {f:.1f} | {a:.1f} |")
    every = [v for v in GRID if all(results[(n, v)][1] - results[(n, v)][2] <= TOLERANCE for n in tables)]
    if every:
        best = min(every, key=lambda v: (np.mean([results[(n, v)][0] for n in tables]), -v[3], v[2]))
        print(f"\nchosen on every table (the library's defaults): {best}")
    defaults = (DEFAULT_MIN_POINTS, DEFAULT_FLOOR, DEFAULT_RUNGS)
    print(
        f"\nTrade-off over the threshold (min points, floor, rungs = {defaults}): compute % / RelAcc change\n"
    )
    print("| threshold | " + " | ".join(tables) + " |")
    print("|---|" + "---|" * len(tables))
    for thr in THRESHOLDS:
        cells = []
        for name in tables:
            c, f, a, _ = results[(name, (DEFAULT_RULE, thr, *defaults))]
            cells.append(f"{c:.0f}% / {a - f:+.1f}")
        print(f"| {thr:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
