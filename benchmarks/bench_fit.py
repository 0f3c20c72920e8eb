"""Speed of the law fitting and of the full `evaluate`, against a per-curve scipy baseline.

    python benchmarks/bench_fit.py [--table ../shared/benchmark/flan.csv]

Two baselines, both scipy.optimize.least_squares on one curve at a time (Huber loss in log space,
same parameterisation), run in the same process:

- naive: 18 fixed starts, numerical Jacobian (what a straightforward implementation does);
- fair: the same 4 data-driven starts our fit polishes, and the analytic Jacobian.

The speed-up against the fair one is what batching many curves in one vectorized
Levenberg-Marquardt buys; against the naive one it also counts the better starts and Jacobian.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from lightning_rectlaw.core.law import (
    _ALPHA,
    _LOWER,
    _UPPER,
    DEFAULT_HUBER_DELTA,
    _grid_starts,
    _model,
    _safe_log,
    fit_laws,
    law_value,
)
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.schedule.evaluate import EVAL_METHODS, evaluate
from lightning_rectlaw.selection import DEFAULT_METHOD

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared" / "benchmark" / "flan.csv"


def _baseline_fit(sizes: np.ndarray, losses: np.ndarray) -> float:
    """Per-curve multi-start scipy fit; returns the best RMSE of log loss."""
    ly = np.log(losses)

    def resid(p):
        return np.log(law_value(sizes, np.exp(p[0]), p[2], np.exp(p[3]), np.exp(p[1]))) - ly

    best = None
    for beta in (0.2, 0.5, 0.9):
        for log_dl in (0.0, 4.0, 8.0):
            for log_e in (-2.0, 0.0):
                r = least_squares(
                    resid,
                    [np.log(100.0), log_dl, beta, log_e],
                    loss="huber",
                    f_scale=DEFAULT_HUBER_DELTA,
                    bounds=([-50, -50, 1e-3, -20], [50, 50, 3, 5]),
                )
                if best is None or r.cost < best.cost:
                    best = r
    return float(np.sqrt(np.mean(best.fun**2)))


def _fair_fit(sizes: np.ndarray, losses: np.ndarray) -> float:
    """Per-curve scipy fit from our 4 starts with the analytic Jacobian; the best RMSE of log loss."""
    y, mask = losses[None, :], np.ones((1, sizes.size), dtype=bool)
    free = np.ones(5, dtype=bool)
    free[_ALPHA] = False
    starts = _grid_starts(sizes[None], y, mask, free)[0]  # (4, 5)
    logd, pos, ly = _safe_log(sizes)[None], (sizes > 0)[None], np.log(losses)
    lo, hi = _LOWER[:4], _UPPER[:4]

    def full(p):
        return np.append(p, 1.0)[None]

    def resid(p):
        return _model(full(p), logd, pos)[0][0] - ly

    def jac(p):
        return _model(full(p), logd, pos)[1][0, :, :4]

    best = None
    for start in starts:
        x0 = np.clip(np.nan_to_num(start[:4], neginf=lo[1]), lo + 1e-9, hi - 1e-9)
        r = least_squares(resid, x0, jac=jac, loss="huber", f_scale=DEFAULT_HUBER_DELTA, bounds=(lo, hi))
        if best is None or r.cost < best.cost:
            best = r
    return float(np.sqrt(np.mean(best.fun**2)))


def _time(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    ap.add_argument("--copies", type=int, default=100, help="curves = table rows x copies")
    args = ap.parse_args()
    if not args.table.exists():
        raise SystemExit(
            f"benchmark table {args.table} not found: pass --table (e.g. the paper's "
            "flan.csv from ../shared/benchmark)"
        )
    warnings.simplefilter("ignore")
    table = LossTable.read_csv(args.table)
    n = len(table)

    t_base = _time(lambda: [_baseline_fit(table.sizes, row) for row in table.losses], 1)
    t_fair = _time(lambda: [_fair_fit(table.sizes, row) for row in table.losses], 3)
    rmse_fair = np.mean([_fair_fit(table.sizes, row) for row in table.losses])
    t_ours = _time(lambda: fit_laws(table.sizes, table.losses), 3)
    rmse_ours = np.mean([f.rmse_log for f in fit_laws(table.sizes, table.losses)])
    rng = np.random.default_rng(0)
    many = np.repeat(table.losses, args.copies, axis=0)
    many = many * np.exp(rng.normal(0, 0.005, many.shape))
    t_many = _time(lambda: fit_laws(table.sizes, many), 1)
    t_eval = _time(lambda: evaluate(table), 3)
    t_default = _time(lambda: evaluate(table, [DEFAULT_METHOD]), 3)

    print(f"table: {args.table} ({n} curves x {table.sizes.size} points)")
    print(f"naive scipy (18 starts, numerical Jacobian): {t_base:8.3f} s  ({n / t_base:9.1f} curves/s)")
    print(
        f"fair scipy (our 4 starts, analytic Jacobian): {t_fair:8.3f} s  ({n / t_fair:9.1f} curves/s)"
        f"  mean RMSE(log) {rmse_fair:.5f}"
    )
    print(
        f"rectified fit, {n:5d} curves     : {t_ours:8.3f} s  ({n / t_ours:9.1f} curves/s)"
        f"  mean RMSE(log) {rmse_ours:.5f}"
    )
    print(f"  speed-up against the fair baseline  x{t_fair / t_ours:.1f}")
    print(f"  speed-up against the naive baseline x{t_base / t_ours:.1f}")
    per = many.shape[0] / t_many
    print(
        f"rectified fit, {many.shape[0]:5d} curves     : {t_many:8.3f} s  ({per:9.1f} curves/s)"
        f"  speed-up x{per / (n / t_fair):.1f} fair, x{per / (n / t_base):.1f} naive"
    )
    print(
        f"evaluate, {len(EVAL_METHODS)} methods x 7 ratios : {t_eval:8.3f} s  (target < 2 s on 2 cores;"
        f" {t_eval / t_base:.2f} x one baseline table fit)"
    )
    print(
        f"evaluate, {DEFAULT_METHOD} x 7 ratios: {t_default:8.3f} s"
        f"  ({t_default / t_base:.3f} x one baseline table fit)"
    )


if __name__ == "__main__":
    main()
