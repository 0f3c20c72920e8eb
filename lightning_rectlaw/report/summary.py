"""Selection summary of a sweep: rank every candidate's result file and explain the choice.

Reads every job's record (:func:`~lightning_rectlaw.report.collect.collect_results`: failed and
unfinished jobs included) and writes, atomically: ``selection_summary.md``, ``.csv``, ``.json``
and ``.png`` (all candidates' points and fitted curves on one log-log plot), and logs the table
and figure to TensorBoard under ``<sweep>/tb_summary``; the finished candidates are ranked."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lightning_rectlaw.core.files import atomic_write_bytes, atomic_write_text
from lightning_rectlaw.core.presentation.formatting import format_number
from lightning_rectlaw.report.collect import collect_results
from lightning_rectlaw.report.markdown import _fmt, markdown
from lightning_rectlaw.report.tbevents import write_image_and_text
from lightning_rectlaw.schedule.rounds import read_rounds
from lightning_rectlaw.selection import (
    CandidateRecord,
    Incomparable,
    Status,
    incomparable,
    loss_table,
    select,
)
from lightning_rectlaw.selection.record import status_line, tokenizer_label
from lightning_rectlaw.selection.scores import bounded, prediction_curve


class NothingRankedError(ValueError):
    """The summary was written, but no candidate of the sweep could be ranked."""


COLUMNS = (
    "rank candidate predicted_loss interval_low interval_high prob_best monitor tokenizer pre_learned_size "
    "beta losses_measured subsets_run examples_processed seconds device visible_devices left_out status"
).split()


def _joint(records: list[CandidateRecord]) -> dict[str, CandidateRecord]:
    """Re-rank the finished candidates together, with the method and options their jobs ran. Each job saw only
    its own curve; here the sweep's curves form one loss table, so screening, calibration and P(best)
    (``robust_ats``, ``pooled``) see every candidate. Returns, per name, the new ``predicted_loss``,
    ``interval``, ``prob_best``, ``outliers`` and ``prediction_curve`` (a candidate the joint ranking cannot
    rank gets its reason as status). Empty when the jobs disagree on the method, options or target size."""
    ok = [r for r in records if r["status"] == Status.OK and len(r.get("sizes") or []) >= 2]
    if not ok or len({r["name"] for r in ok}) != len(ok):
        return {}
    agree = {
        json.dumps([r.get("method"), r.get("options") or {}, r.get("target_size")], sort_keys=True)
        for r in ok
    }
    if len(agree) != 1 or ok[0].get("method") is None:
        return {}
    table = loss_table(ok)
    target, level = float(ok[0]["target_size"]), float(ok[0].get("interval_level", 0.95))
    method, options = ok[0]["method"], ok[0].get("options") or {}
    sel = select(table, method, budget=table.max_size, target=target, level=level, **options)
    joint = {}
    for c in sel.candidates:
        outliers = {str(int(size)): why for size, why in c.outliers.items()}
        if not c.rankable:
            joint[c.name] = {
                "status": Status.FAILED.because(f"no prediction: {c.reason}"),
                "outliers": outliers,
            }
            continue
        joint[c.name] = {
            "predicted_loss": c.predicted_loss if c.predicted_loss is not None else c.score,
            "interval": bounded(c.interval),
            "prob_best": c.prob_best,
            "outliers": outliers,
            "prediction_curve": prediction_curve(c.fit, c.sizes_used, target),
        }
    return joint


def _adaptive(root: Path, records: list[CandidateRecord]) -> dict[str, Any] | None:
    """With an adaptive sweep's rounds file: mark each record with its last ``round``, where it
    was ``eliminated_at`` (rung size) and why, and its P(best) then; return the sweep's rounds and
    compute (examples run, against every candidate running to the budget)."""
    state = read_rounds(root)
    if state is None:
        return None
    by_name = {r["name"]: r for r in records}
    by_key = {_candidate_key(r): r for r in records if r.get("overrides")}
    for i, rnd in enumerate(state["rounds"], start=1):
        for d in rnd["decisions"]:
            r = by_key.get(d.get("candidate"), by_name.get(d["name"]))
            if r is None:
                continue
            r["round"] = i
            if not d["keep"] and not d.get("failed"):
                r["eliminated_at"], r["elimination_reason"] = rnd["size"], d["reason"]
                r["prob_best"] = d.get("prob_best")
    spent = sum(float(r.get("examples_processed") or 0) for r in records)
    budget = state.get("budget")  # with a compute budget: the rungs past it were bought with it
    past = sorted(
        {d["name"] for rnd in state["rounds"] if budget and rnd["size"] > budget for d in rnd["decisions"]}
    )
    full = _full_schedule(records, len(state["rungs"]), budget)
    return {**state, "spent": spent, "full": full, "past_budget": past}


def _candidate_key(record: CandidateRecord) -> str:
    """The adaptive sweeper's key of a job's candidate: its overrides but the round's budget."""
    return " ".join(o for o in record["overrides"] if not o.startswith("rectlaw.budget="))


def _full_schedule(records: list[CandidateRecord], last_round: int, budget: float | None = None) -> float:
    """Training examples every candidate would have run to the budget: the subsets a candidate that ran the
    last round ran (up to ``budget``, when the sweep went past it), times each candidate's own examples per
    subset example (its epochs; the median of the others' for a candidate that ran nothing)."""
    ran = {r["name"]: sum(map(float, r.get("sizes") or ())) for r in records}
    if budget:
        schedule = max((sum(s for s in r.get("sizes") or () if s <= budget) for r in records), default=0.0)
    else:
        schedule = max((ran[r["name"]] for r in records if r.get("round") == last_round), default=0.0)
    passes = {
        r["name"]: float(r["examples_processed"]) / ran[r["name"]]
        for r in records
        if r.get("examples_processed") and ran[r["name"]] > 0
    }
    typical = float(np.median(list(passes.values()))) if passes else 0.0
    return schedule * sum(passes.get(r["name"], typical) for r in records)


def _predicted(record: CandidateRecord) -> bool:
    return record["status"] == Status.OK and record.get("predicted_loss") is not None


def _split_by(records: list[CandidateRecord], key: str) -> dict[Any, list[str]]:
    """The names of the predicted candidates by their value of ``key`` (those without one left
    out), when there is more than one value; else empty."""
    groups: dict[Any, list[str]] = {}
    for r in records:
        if _predicted(r) and r.get(key) is not None:
            groups.setdefault(r[key], []).append(r["name"])
    return groups if len(groups) > 1 else {}


def _rows(records: list[CandidateRecord], rank: bool = True) -> list[dict[str, Any]]:
    ok = [r for r in records if rank and _predicted(r)]
    failed = [r for r in records if r not in ok]
    # survivors first, by prediction; then the eliminated, the later eliminated first
    ok.sort(key=lambda r: (-(r.get("eliminated_at") or math.inf), r["predicted_loss"]))
    rows = []
    for rank, r in enumerate(ok + failed, start=1):
        law = r.get("law") or {}
        interval = r.get("interval") or (None, None)
        rows.append(
            {
                "rank": rank if r in ok else None,
                "candidate": r["name"],
                "predicted_loss": r.get("predicted_loss"),
                "interval_low": interval[0],
                "interval_high": interval[1],
                "prob_best": r.get("prob_best"),
                "monitor": r.get("monitor"),
                "tokenizer": tokenizer_label(r.get("tokenizer")),
                "pre_learned_size": law.get("pre_learned_size"),
                "beta": law.get("beta"),
                "losses_measured": ", ".join(
                    f"{s}:{v:.4g}" for s, v in zip(r.get("sizes", []), r.get("losses", []))
                ),
                "subsets_run": len(r.get("sizes", [])) + len(r.get("failed", {})),
                "examples_processed": r.get("examples_processed"),
                "seconds": r.get("seconds", r.get("job_seconds")),
                "device": r.get("device"),
                "visible_devices": r.get("visible_devices"),
                "status": status_line(r),
                "left_out": "; ".join(f"{k}: {v}" for k, v in (r.get("outliers") or {}).items()) or None,
                "round": r.get("round"),
                "eliminated_at": r.get("eliminated_at"),
                "elimination_reason": r.get("elimination_reason"),
                "outliers": r.get("outliers") or {},
                "checkpoint": r.get("checkpoint"),
                "replaced": r.get("replaced") or [],
            }
        )
    return rows


def write_summary(sweep_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write the summary files of ``sweep_dir`` into ``out_dir`` (default: the sweep directory).

    Raises:
        NothingRankedError: after writing them, when no candidate could be ranked, or the candidates are not
            comparable: predicted at different target sizes, scored on different metrics, or under different
            tokenizers on a per-token loss (the last line of the message is the fix).
        OSError: the output directory cannot be written (the message names it and the fix)."""
    root = Path(sweep_dir)
    out = root if out_dir is None else Path(out_dir)
    records = collect_results(root)
    rounds = _adaptive(root, records)  # hydra/sweeper=rectlaw: rounds, eliminations, compute
    records = _short_names(records)
    refused = incomparable([r for r in records if r["status"] == Status.OK])  # other metrics, tokenizers
    running = [r for r in records if r.get("eliminated_at") is None]
    joint = {} if refused else _joint(running)  # the eliminated keep their P(best) of then
    records = [{**r, **joint.get(r["name"], {})} for r in records]
    # Losses predicted at different target sizes (a sweep over datasets) are not comparable;
    # different validation batches at one size (another tokenizer) are flagged.
    mixed = _split_by(records, "target_size")
    rows = _rows(records, rank=not mixed and refused is None)
    columns = COLUMNS if rounds is None else [*COLUMNS[:-1], "round", "eliminated_at", COLUMNS[-1]]
    if any(r.get("checkpoint") for r in records):
        columns = [*columns[:-1], "checkpoint", columns[-1]]
    paths = [out / f"selection_summary.{ext}" for ext in ("md", "csv", "json", "png")]
    data_groups = list(_split_by(records, "validation_data").values())
    text = markdown(rows, root, columns, rounds, mixed, data_groups, refused)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    from lightning_rectlaw.core.presentation.figures import curve_figure

    fig = curve_figure(
        {_plot_label(r): r for r in records if r.get("sizes")}, title=f"Candidates of {root.name}"
    )
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    size = (round(fig.get_figwidth() * 120), round(fig.get_figheight() * 120))
    summary = {"sweep_dir": str(root), "candidates": rows, "results": records}
    try:
        atomic_write_text(paths[0], text)
        atomic_write_text(paths[1], buf.getvalue())
        atomic_write_text(paths[2], json.dumps(summary, indent=2, default=str))
        atomic_write_bytes(paths[3], png.getvalue())
        write_image_and_text(out / "tb_summary", "rectlaw/selection", png.getvalue(), size, text)
    except OSError as err:
        raise OSError(
            f"cannot write the selection summary into {str(out)!r} ({err.strerror or err}); "
            "write it elsewhere with `rectlaw summarize SWEEP_DIR --out DIR`"
        ) from None
    _refuse_unranked(root, rows, mixed, refused, paths[0])
    return paths


def _refuse_unranked(
    root: Path, rows: list[dict[str, Any]], mixed: dict, refused: Incomparable | None, summary: Path
) -> None:
    """Raise :class:`NothingRankedError` when the written summary ranks no candidate, and why."""
    if mixed:
        raise NothingRankedError(
            f"the candidates of {str(root)!r} were predicted at different target sizes "
            f"({'; '.join(f'{t}: {names}' for t, names in mixed.items())}), so none is chosen; sweep "
            f"one dataset at a time or set rectlaw.target_size; the summary is in {summary}"
        )
    if refused is not None:
        raise NothingRankedError(
            f"none of the candidates of {str(root)!r} is ranked: {refused.problem}; the summary is "
            f"in {summary}\n{refused.fix}"
        )
    if not any(r["rank"] is not None for r in rows):
        reasons = "; ".join(f"{r['candidate']}: {r['status']}" for r in rows)
        raise NothingRankedError(
            f"no candidate of {str(root)!r} could be ranked ({reasons}); the summary is in {summary}"
        )


def _short_names(records: list[CandidateRecord]) -> list[CandidateRecord]:
    """A candidate named by a local directory (``/models/team/gpt2-local``) goes by the shortest
    tail of its path that no other candidate shares (``gpt2-local``, or ``a/gpt2`` when two end
    alike), its full path in ``checkpoint``; hub ids (``org/name``) keep their names."""
    paths = {r["name"]: Path(r["name"]).parts for r in records if _is_local(r["name"])}
    taken = {r["name"] for r in records if r["name"] not in paths}
    short = {}
    for name, parts in paths.items():
        for n in range(1, len(parts) + 1):
            tail = "/".join(parts[-n:])
            if tail not in taken and all(p[-n:] != parts[-n:] for k, p in paths.items() if k != name):
                break
        taken.add(tail)
        short[name] = tail
    return [
        {**r, "name": short[r["name"]], "checkpoint": r["name"]} if r["name"] in short else r for r in records
    ]


def _is_local(name: str) -> bool:
    """Whether a candidate's name is a local path rather than a hub id or a config name."""
    return name.startswith(("/", "./", "../", "~")) or Path(name).is_dir()


def _plot_label(record: CandidateRecord) -> str:
    """A candidate's name in the plot; one the adaptive sweep stopped says where (its curve ends there)."""
    at = record.get("eliminated_at")
    return record["name"] if at is None else f"{record['name']} (stopped at {format_number(at)})"


def verdict(summary_path: str | os.PathLike) -> str:
    """The sweep's outcome in one line, from a written summary (``selection_summary.md`` or its
    ``.json``): the chosen candidate, its predicted loss and interval, P(best) and where the
    summary is. A sweep ends with it and ``rectlaw summarize`` prints it."""
    md = Path(summary_path).with_suffix(".md")
    data = json.loads(md.with_suffix(".json").read_text())
    rows = [r for r in data["candidates"] if r.get("rank") is not None]
    if not rows:
        return f"no candidate could be ranked; summary: {md}"
    best = rows[0]
    by_name = {r["name"]: r for r in data.get("results", [])}
    rec = by_name.get(best["candidate"], {})
    interval = ""
    if best.get("interval_low") is not None and best.get("interval_high") is not None:
        level = float(rec.get("interval_level", 0.95))
        interval = f" ({level:.0%} interval {_fmt(best['interval_low'])}-{_fmt(best['interval_high'])})"
    target = f" at {rec['target_size']} examples" if rec.get("target_size") else ""
    chance = "" if best.get("prob_best") is None else f", P(best) {best['prob_best']:.0%}"
    return (
        f"chose {best['candidate']} of {len(rows)} ranked: predicted loss "
        f"{_fmt(best['predicted_loss'])}{interval}{target}{chance}; summary: {md}"
    )


def failures(summary_path: str | os.PathLike) -> list[str]:
    """The lines a sweep ends with when some of its candidates were not ranked (failed, killed, or left
    without a prediction), from a written summary that ranks the others: one per such candidate (its name and
    why, on one line), then what that means for P(best) and the fix. Empty when every candidate is ranked."""
    data = json.loads(Path(summary_path).with_suffix(".json").read_text())
    rows = data["candidates"]
    left = [r for r in rows if r.get("rank") is None]
    if not left or len(left) == len(rows):
        return []
    lines = [f"{r['candidate']}: {_one_line(r['status'])}" for r in left]
    lines.append(
        f"{len(left)} of {len(rows)} candidates failed or did not finish (above): P(best) is among "
        f"the {len(rows) - len(left)} ranked only, and one left out may be the best; fix them and "
        "run the sweep again in the same directory (finished subsets are reused)"
    )
    return lines


def _one_line(text: str, limit: int = 400) -> str:
    """A reason on one console line: its lines joined (a wrapped exception's cause is on its
    second), cut at ``limit`` characters."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "no reason recorded"
    return line if len(line) <= limit else line[: limit - 3] + "..."
