"""The ``rectlaw`` command line: fit laws, select and evaluate on a recorded loss table, list the
methods, summarize a sweep directory, run the Hydra sweep app (``rectlaw COMMAND --help``)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lightning_rectlaw.core.law import fit_rows
from lightning_rectlaw.core.presentation.display import print_rows
from lightning_rectlaw.core.presentation.formatting import format_number
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.schedule.evaluate import (
    DEFAULT_METRICS,
    DIGITS,
    EVAL_METHODS,
    EVAL_RATIOS,
    METRICS,
    evaluate,
)
from lightning_rectlaw.selection import DEFAULT_METHOD, METHODS, Status, select
from lightning_rectlaw.selection.options import Option
from lightning_rectlaw.selection.registry import all_options


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:  # Hydra parses its own command line
        from lightning_rectlaw.app.sweep import run

        return run(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return args.run(args)
    except BrokenPipeError:  # `rectlaw select ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as err:
        print(f"rectlaw {args.command}: error: {err}", file=sys.stderr)
        return 2


def _show_warning(message, category, *_args, **_kw) -> None:
    print(f"rectlaw: warning: {message}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rectlaw",
        description="Select the LLM to fine-tune with the rectified scaling law (Lin et al., ICML 2024).",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser("fit", help="fit a scaling law to every candidate of a loss table")
    f.add_argument("table", help="loss table CSV in the paper's format")
    f.add_argument("--law", choices=["rectified", "vanilla"], default="rectified")
    f.add_argument("--free-alpha", action="store_true", help="fit the exponent alpha too")
    f.add_argument(
        "--max-iter", type=_positive_int, default=1000, help="Levenberg-Marquardt iterations per start"
    )
    f.add_argument(
        "--with-zero-shot", action="store_true", help="also fit the zero-shot point (rectified law only)"
    )
    _format(f, ["table", "csv", "json"])
    f.set_defaults(run=_cmd_fit)

    s = sub.add_parser("select", help="rank candidates using only data within a budget")
    s.add_argument("table")
    s.add_argument("--budget", required=True, help="ratio of the target ('1/8') or a size")
    s.add_argument(
        "--target", type=float, help="full fine-tuning set size (default: the table's largest size)"
    )
    s.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    s.add_argument("--level", type=_level, default=0.95, help="prediction interval coverage, in (0, 1)")
    _option_flags(s)
    _format(s, ["table", "csv", "json"])
    s.set_defaults(run=_cmd_select)

    _evaluate_parser(sub)

    m = sub.add_parser("methods", help="list the selectors")
    m.set_defaults(run=_cmd_methods)

    z = sub.add_parser("summarize", help="(re)write the selection summary of a sweep directory")
    z.add_argument("sweep_dir")
    z.add_argument(
        "--table", metavar="CSV", help="also write the candidates' losses as a loss table (paper format)"
    )
    z.add_argument("--out", metavar="DIR", help="write the summary here instead of into SWEEP_DIR")
    z.set_defaults(run=_cmd_summarize)

    sub.add_parser(
        "sweep",
        help="the Hydra sweep app: `rectlaw sweep -m model=a,b,c` (one job per candidate, then the "
        "selection summary); `rectlaw sweep --help` for Hydra's options",
        add_help=False,
    )
    return p


def _evaluate_parser(sub) -> None:
    e = sub.add_parser(
        "evaluate", help="score selectors per budget: the paper's PearCorr and RelAcc, and user-level metrics"
    )
    e.add_argument("table")
    e.add_argument("--target", type=float)
    e.add_argument(
        "--methods",
        help=f"comma-separated (default: those of {','.join(EVAL_METHODS)} the table has the columns "
        f"for; with --schedule adaptive, {DEFAULT_METHOD}: the rule needs a method's P(best))",
    )
    e.add_argument(
        "--ratios",
        default=",".join(map(str, EVAL_RATIOS)),
        help="comma-separated budget ratios r (budget = target / r; default: %(default)s)",
    )
    e.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma-separated, from {','.join(METRICS)} (default: {','.join(DEFAULT_METRICS)}); "
        "HitRate and Regret are over random pools of --pool-size candidates",
    )
    e.add_argument(
        "--pool-size", type=_positive_int, default=5, help="candidates per random pool (default 5)"
    )
    e.add_argument(
        "--max-iter",
        type=_positive_int,
        help="Levenberg-Marquardt iterations per start of the law fits (ourfit, vanillafit; default 1000)",
    )
    e.add_argument(
        "--compute",
        action="store_true",
        help="add metric Compute: examples fine-tuned, in %% of every candidate on the full set",
    )
    e.add_argument(
        "--schedule",
        choices=["full", "adaptive"],
        default="full",
        help="full: every candidate runs its whole schedule; adaptive: successive elimination on "
        "P(best) at rungs doubling up to the budget (Compute counts what it ran)",
    )
    _adaptive_flags(e)
    _format(e, ["table", "csv"])
    e.set_defaults(run=_cmd_evaluate)


def _adaptive_flags(e: argparse.ArgumentParser) -> None:
    """``rectlaw evaluate --schedule adaptive``'s rule settings (default: ``RuleSettings``')."""
    e.add_argument(
        "--threshold",
        type=_probability,
        help="adaptive: the P(best) the stopped candidates may hold (default: the library's)",
    )
    e.add_argument(
        "--compute-budget",
        type=_positive_float,
        help="adaptive: survivors go on past the budget within this multiple of the full schedule's "
        "compute at the budget (1: the paper's compute); default: stop at the budget",
    )
    e.add_argument(
        "--rule",
        help="adaptive: mass (stop the least likely while their summed P(best) is below the "
        "threshold) or each (stop every candidate below it); default: the library's",
    )


def _format(p: argparse.ArgumentParser, choices: list[str]) -> None:
    p.add_argument("--format", choices=choices, default="table", help="output format")


# --- commands ---------------------------------------------------------------------------------


def _cmd_fit(args) -> int:
    table = LossTable.read_csv(args.table)
    if args.with_zero_shot:
        if args.law == "vanilla":
            raise ValueError("--with-zero-shot needs --law rectified: the vanilla law is infinite at size 0")
        if table.zero_shot is None:
            raise ValueError(f"--with-zero-shot: {args.table} has no zero-shot column '0'")
    fits, counts, need = fit_rows(
        table.sizes,
        table.losses,
        args.law,
        table.zero_shot if args.with_zero_shot else None,
        free_alpha=args.free_alpha,
        names=table.names,
        max_iter=args.max_iter,
    )
    rows = []
    for name, f, n in zip(table.names, fits, counts):
        if f is None:
            unfit = dict.fromkeys(("B", "pre_learned_size", "beta", "E", "alpha", "rmse_log"))
            status = f"too few points ({n} < {need})"
            rows.append({"name": name, **unfit, "n_points": int(n), "at_bound": None, "status": status})
            continue
        rows.append(
            {
                "name": name,
                **f.params,
                "rmse_log": f.rmse_log,
                "n_points": int(f.sizes.size),
                "at_bound": ", ".join(f.at_bound) or "-",  # pinned at the search's bound: not estimated
                "status": Status.OK if f.converged else "not converged",
            }
        )
    print_rows(rows, args.format)
    return 0


def _option_flags(p: argparse.ArgumentParser) -> None:
    """One flag per option of the registered methods (``--k 4``, ``--no-centre``)."""
    g = p.add_argument_group("method options (`rectlaw methods`; default: the method's)")
    for option in all_options().values():
        flag, dest = "--" + option.name.replace("_", "-"), _OPTION + option.name
        if option.type is bool:
            g.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, help=option.help)
        else:
            g.add_argument(
                flag, dest=dest, type=_parsed(option), metavar=option.type.__name__.upper(), help=option.help
            )


_OPTION = "option:"


def _parsed(option: Option):
    def parse(text: str):
        try:
            return option.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _cmd_select(args) -> int:
    table = LossTable.read_csv(args.table)
    given = {
        k.removeprefix(_OPTION): v for k, v in vars(args).items() if k.startswith(_OPTION) and v is not None
    }
    sel = select(table, args.method, budget=args.budget, target=args.target, level=args.level, **given)
    rows = sel.rows()
    if args.format == "table":
        print(
            f"method={sel.method} budget={sel.budget:g} target={sel.target:g} "
            f"interval={sel.interval_level:.0%}"
        )
    if args.format == "json":
        head = {k: getattr(sel, k) for k in ("method", "budget", "target", "interval_level")}
        print(json.dumps({**head, "candidates": rows}, indent=2))
    else:
        print_rows(rows, args.format)
    if not sel.ranking:
        reasons = "; ".join(sorted(set(sel.unrankable.values())))
        sizes = ", ".join(format_number(s) for s in table.sizes)
        print(
            f"rectlaw select: error: no candidate could be ranked at budget {args.budget} ({reasons}); "
            f"use a larger --budget (the table's sizes are {sizes})",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_evaluate(args) -> int:
    table = LossTable.read_csv(args.table)
    if args.methods is None and args.schedule == "adaptive":
        args.methods = DEFAULT_METHOD
    methods = None  # the default: every method the table has the columns for
    if args.methods is not None:
        methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    metrics = [_metric_name(m) for m in args.metrics.split(",") if m.strip()]
    try:
        ratios = [int(r) for r in args.ratios.split(",") if r.strip()]
    except ValueError:
        raise ValueError(f"--ratios must be comma-separated integers, got {args.ratios!r}") from None
    if not ratios or any(r < 1 for r in ratios):
        raise ValueError(f"--ratios must be positive integers (budget = target / r), got {args.ratios!r}")
    given = (("prob_threshold", args.threshold), ("rule", args.rule), ("compute_budget", args.compute_budget))
    adaptive = {k: v for k, v in given if v is not None}
    if adaptive and args.schedule != "adaptive":
        raise ValueError(
            "--threshold, --rule and --compute-budget set the adaptive schedule: add --schedule adaptive"
        )
    results = evaluate(
        table,
        methods,
        ratios,
        target=args.target,
        compute=args.compute,
        metrics=metrics,
        pool_size=args.pool_size,
        schedule=args.schedule,
        adaptive=adaptive,
        **({} if args.max_iter is None else {"max_iter": args.max_iter}),
    )
    if not results.ranked:
        print(
            "rectlaw evaluate: error: no method ranked any candidate at any budget ratio "
            f"{ratios}; use smaller ratios (larger budgets: the table's sizes are "
            f"{', '.join(format_number(s) for s in table.sizes)})",
            file=sys.stderr,
        )
        return 1
    if args.format == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["method", "ratio", "metric", "value"])
        for r in results:
            w.writerow([_label(r.method), r.ratio, r.metric, f"{r.value:.{DIGITS.get(r.metric, 1)}f}"])
        return 0
    rows = []
    for metric in dict.fromkeys(r.metric for r in results):
        for m in dict.fromkeys(r.method for r in results):
            vals = {r.ratio: r.value for r in results if r.method == m and r.metric == metric}
            if not vals:
                continue  # e.g. Brier for a method without P(best)
            row: dict[str, Any] = {"metric": metric, "method": _label(m)}
            row.update({f"1/{r}": vals.get(r) for r in ratios})
            finite = [v for v in vals.values() if np.isfinite(v)]
            row["mean"] = float(np.mean(finite)) if finite else np.nan  # nan: no budget scored it
            rows.append(row)
    print_rows(rows, "table", digits=2 if {"Brier", "Compute"} & {r.metric for r in results} else 1)
    return 0


def _metric_name(text: str) -> str:
    """Metric names are matched case-insensitively (``hitrate`` is ``HitRate``)."""
    by_lower = {m.lower(): m for m in METRICS}
    return by_lower.get(text.strip().lower(), text.strip())


def _number(kind: type, ok, what: str):
    """An argparse type: a ``kind`` (int or float) for which ``ok`` holds, else a usage error
    saying what it must be."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = float("nan")  # no `ok` holds for nan
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: 0 < v < float("inf"), "a positive integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number like 1 or 0.5")
_probability = _number(float, lambda v: 0 <= v < 1, "a probability in [0, 1) like 0.02")
_level = _number(float, lambda v: 0 < v < 1, "a coverage in (0, 1) like 0.8 or 0.95")


def _cmd_methods(args) -> int:
    rows = [
        {
            "method": name + (" (default)" if name == DEFAULT_METHOD else ""),
            "label": entry.label,
            "options": ", ".join(f"{k}={v}" for k, v in entry.defaults.items()) or "-",
            "needs": ", ".join(entry.needs) or "-",
            "description": entry.description,
        }
        for name, entry in METHODS.items()
    ]
    print_rows(rows, "table")
    print()
    options = [
        {"option": o.name, "default": str(o.default), "must be": o.must_be, "meaning": o.help}
        for o in all_options().values()
    ]
    print_rows(options, "table")
    return 0


def _label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def _cmd_summarize(args) -> int:
    from lightning_rectlaw.report import collect_results, failures, verdict, write_summary
    from lightning_rectlaw.selection import loss_table

    paths = write_summary(args.sweep_dir, out_dir=args.out)
    if args.table:
        loss_table(collect_results(args.sweep_dir), source=args.table).write_csv(args.table)
        paths.append(args.table)
    for p in paths[1:]:
        print(f"wrote {p}")
    print(f"[rectlaw] {verdict(paths[0])}")  # the line a sweep ends with
    left_out = failures(paths[0])  # the candidates not ranked, as the sweep named them
    for line in left_out:
        print(f"[rectlaw] {line}")
    return 1 if left_out else 0


if __name__ == "__main__":
    sys.exit(main())
