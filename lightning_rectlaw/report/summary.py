"""Selection summary of a sweep: rank every candidate's result file and explain the choice.

Reads every ``candidate.json`` below a sweep directory (one per Hydra job) and writes, atomically:
``selection_summary.md``, ``.csv``, ``.json`` and ``selection_summary.png`` (all candidates'
points and fitted curves on one log-log plot), and logs the table and figure to TensorBoard under
``<sweep>/tb_summary``. Every job the sweep started is listed: failed candidates with their
error, jobs that never finished (killed, or still running) as ``incomplete`` with what they had
measured; the rest are ranked. Two jobs with the same candidate name are told apart by the
overrides in which they differ.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from lightning_rectlaw.core.files import atomic_write_bytes, atomic_write_text
from lightning_rectlaw.core.formatting import format_number
from lightning_rectlaw.schedule.rounds import read_rounds
from lightning_rectlaw.selection import loss_table

__all__ = [
    "CANDIDATE_FILE",
    "CandidateRecord",
    "NothingRankedError",
    "collect_results",
    "loss_table",
    "verdict",
    "write_summary",
]

#: Each job's result file, written by the app also when the job fails.
CANDIDATE_FILE = "candidate.json"


class CandidateRecord(TypedDict, total=False):
    """The contents of ``candidate.json``: one job's result, written by the app (``run_candidate``)
    and read here. ``name`` and ``status`` are always present; a finished job adds the fields of
    :class:`~lightning_rectlaw.selection.record.RectifiedLawResult`.

    Keys:
        name: the candidate (its config name, or its hub name / path).
        status: ``"ok"``, ``"failed: ..."`` or ``"incomplete: ..."``.
        error: the exception, for a failed job.
        overrides: the job's Hydra overrides (read from its ``.hydra/overrides.yaml``).
        num_params, job_seconds, family: the model's size, the job's wall time, its family.
        prob_best: set by the summary's joint ranking.
        sizes, losses, zero_shot_loss, failed, outliers, method, options, target_size,
        predicted_loss, interval, interval_level, prediction_curve, law, vanilla_law,
        examples_processed, seconds, device, validation_data: as in ``RectifiedLawResult``.
    """

    name: str
    status: str
    error: str
    overrides: list[str]
    num_params: int
    job_seconds: float
    family: str
    prob_best: float | None
    sizes: list[int]
    losses: list[float]
    zero_shot_loss: float | None
    failed: dict[str, str]
    outliers: dict[str, str]
    method: str
    options: dict[str, Any]
    target_size: int
    predicted_loss: float | None
    interval: list[float] | None
    interval_level: float
    prediction_curve: dict[str, list[float]] | None
    law: dict[str, float] | None
    vanilla_law: dict[str, float] | None
    examples_processed: int
    seconds: float
    reused: int
    device: str
    validation_data: str | None
    round: int
    eliminated_at: int
    elimination_reason: str


class NothingRankedError(ValueError):
    """The summary was written, but no candidate of the sweep could be ranked."""


COLUMNS = [
    "rank",
    "candidate",
    "predicted_loss",
    "interval_low",
    "interval_high",
    "prob_best",
    "pre_learned_size",
    "beta",
    "losses_measured",
    "subsets_run",
    "examples_processed",
    "seconds",
    "device",
    "left_out",
    "status",
]


def collect_results(sweep_dir: str | os.PathLike) -> list[CandidateRecord]:
    """Load every candidate result below ``sweep_dir``, one record per job the sweep started.

    A Hydra job directory (it has ``.hydra/overrides.yaml``) without a result file gives an
    ``incomplete`` record with the subsets its resume cache had finished. Each record carries
    the job's ``overrides``; names shared by several jobs get the overrides that tell them apart.

    Raises:
        FileNotFoundError: the directory does not exist.
        ValueError: no job and no result file was found, or some are corrupt (the message lists
            them and why).
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep directory {str(root)!r} does not exist")
    files = sorted(root.rglob(CANDIDATE_FILE))
    jobs = sorted(p.parent.parent for p in root.rglob(".hydra/overrides.yaml"))
    unfinished = [j for j in jobs if not (j / CANDIDATE_FILE).exists()]
    if not files and not unfinished:
        raise ValueError(
            f"no {CANDIDATE_FILE} found below {str(root)!r}: is it a sweep directory "
            "of examples/train.py, and did any job start?"
        )
    records, bad = [], []
    for f in files:
        try:
            rec = json.loads(f.read_text())
            if not isinstance(rec, dict) or "name" not in rec or "status" not in rec:
                raise ValueError("missing 'name' or 'status'")
            rec.setdefault("overrides", _job_overrides(f.parent))
            records.append(rec)
        except (OSError, ValueError) as err:
            bad.append(f"{f}: {err}")
    if bad:
        raise ValueError(
            "corrupt result file(s); delete them and re-run those jobs (finished "
            "subsets are reused):\n  " + "\n  ".join(bad)
        )
    records += [_incomplete(job) for job in unfinished]
    return _distinct_names(records)


def _job_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return []
    import yaml

    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])]


def _incomplete(job_dir: Path) -> CandidateRecord:
    """The record of a job that never wrote its result: named as the app names it, with the
    subsets its resume cache had finished."""
    import yaml

    config_file = job_dir / ".hydra" / "config.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.exists() else {}
    hydra = job_dir / ".hydra" / "hydra.yaml"
    choices = (
        (yaml.safe_load(hydra.read_text()) or {}).get("hydra", {}).get("runtime", {}).get("choices", {})
        if hydra.exists()
        else {}
    )
    name = (config.get("model") or {}).get("model_name_or_path") or choices.get("model") or job_dir.name
    done = {}
    for f in (job_dir / "rectlaw" / "rectlaw_runs").glob("size_*.json"):
        try:
            run = json.loads(f.read_text())
            done[int(run["size"])] = float(run["loss"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    sizes = sorted((s for s in done if s > 0), reverse=True)
    return {
        "name": str(name),
        "status": f"incomplete: the job did not finish (killed, or still running); "
        f"{len(sizes)} subset(s) measured",
        "sizes": sizes,
        "losses": [done[s] for s in sizes],
        "zero_shot_loss": done.get(0),
        "overrides": _job_overrides(job_dir),
    }


def _distinct_names(records: list[CandidateRecord]) -> list[CandidateRecord]:
    """Records sharing a name get ``name [overrides in which they differ]``."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_name.setdefault(r["name"], []).append(r)
    for name, group in by_name.items():
        if len(group) < 2:
            continue
        common = set.intersection(*(set(r.get("overrides") or []) for r in group))
        for i, r in enumerate(group):
            differing = [o for o in (r.get("overrides") or []) if o not in common]
            r["name"] = f"{name} [{', '.join(differing) or f'job {i + 1}'}]"
    return records


def _joint(records: list[CandidateRecord]) -> dict[str, CandidateRecord]:
    """Re-rank the finished candidates together, with the method and options their jobs ran.

    Each job saw only its own curve; here the sweep's curves form one loss table, so screening,
    calibration and P(best) (``robust_ats``, ``pooled``) see every candidate. Returns, per name,
    the new ``predicted_loss``, ``interval``, ``prob_best``, ``outliers`` and
    ``prediction_curve`` (a candidate the joint ranking cannot rank gets its reason as status).
    Empty when the jobs disagree on the method, its options or the target size.
    """
    ok = [r for r in records if r["status"] == "ok" and len(r.get("sizes") or []) >= 2]
    if not ok or len({r["name"] for r in ok}) != len(ok):
        return {}
    agree = {
        json.dumps([r.get("method"), r.get("options") or {}, r.get("target_size")], sort_keys=True)
        for r in ok
    }
    if len(agree) != 1 or ok[0].get("method") is None:
        return {}
    from lightning_rectlaw.selection import prediction_curve, select

    table = loss_table(ok)
    target, level = float(ok[0]["target_size"]), float(ok[0].get("interval_level", 0.95))
    sel = select(
        table,
        ok[0]["method"],
        budget=table.max_size,
        target=target,
        level=level,
        **(ok[0].get("options") or {}),
    )
    joint = {}
    for c in sel.candidates:
        outliers = {str(int(size)): why for size, why in c.outliers.items()}
        if not c.rankable:
            joint[c.name] = {"status": f"failed: no prediction: {c.reason}", "outliers": outliers}
            continue
        bounded = c.interval is not None and all(map(math.isfinite, c.interval))
        joint[c.name] = {
            "predicted_loss": c.predicted_loss if c.predicted_loss is not None else c.score,
            "interval": c.interval if bounded else None,
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
            if not d["keep"] and not d["reason"].startswith("failed"):
                r["eliminated_at"], r["elimination_reason"] = rnd["size"], d["reason"]
                r["prob_best"] = d.get("prob_best")
    spent = sum(float(r.get("examples_processed") or 0) for r in records)
    return {**state, "spent": spent, "full": _full_schedule(records, len(state["rungs"]))}


def _candidate_key(record: CandidateRecord) -> str:
    """The adaptive sweeper's key of a job's candidate: its overrides but the round's budget."""
    return " ".join(o for o in record["overrides"] if not o.startswith("rectlaw.budget="))


def _full_schedule(records: list[CandidateRecord], last_round: int) -> float:
    """Training examples every candidate would have run to the budget: the subsets a candidate
    that ran the last round ran, times each candidate's own examples per subset example (its
    epochs; the median of the others' for a candidate that ran nothing)."""
    ran = {r["name"]: sum(map(float, r.get("sizes") or ())) for r in records}
    schedule = max((ran[r["name"]] for r in records if r.get("round") == last_round), default=0.0)
    passes = {
        r["name"]: float(r["examples_processed"]) / ran[r["name"]]
        for r in records
        if r.get("examples_processed") and ran[r["name"]] > 0
    }
    typical = float(np.median(list(passes.values()))) if passes else 0.0
    return schedule * sum(passes.get(r["name"], typical) for r in records)


def _predicted(record: CandidateRecord) -> bool:
    """Whether the record has a prediction to rank."""
    return record["status"] == "ok" and record.get("predicted_loss") is not None


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
                "pre_learned_size": law.get("pre_learned_size"),
                "beta": law.get("beta"),
                "losses_measured": ", ".join(
                    f"{s}:{v:.4g}" for s, v in zip(r.get("sizes", []), r.get("losses", []))
                ),
                "subsets_run": len(r.get("sizes", [])) + len(r.get("failed", {})),
                "examples_processed": r.get("examples_processed"),
                "seconds": r.get("seconds", r.get("job_seconds")),
                "device": r.get("device"),
                "status": r["status"] if "error" not in r else f"failed: {r['error']}",
                "left_out": "; ".join(f"{k}: {v}" for k, v in (r.get("outliers") or {}).items()) or None,
                "round": r.get("round"),
                "eliminated_at": r.get("eliminated_at"),
                "elimination_reason": r.get("elimination_reason"),
                "outliers": r.get("outliers") or {},
            }
        )
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return format_number(v, 4, missing="–")
    return "–" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def _fmt_prob(p: float | None) -> str:
    return "an unknown probability" if p is None else f"{p:.0%}"


def _markdown(
    rows: list[dict[str, Any]],
    sweep: Path,
    columns: list[str] = COLUMNS,
    rounds: dict | None = None,
    mixed: dict[Any, list[str]] | None = None,
    data_groups: list[list[str]] | None = None,
) -> str:
    ranked = [r for r in rows if r["rank"] is not None]
    lines = [f"# Selection summary — {sweep}", ""]
    if ranked and data_groups:
        groups = "; ".join(", ".join(f"`{n}`" for n in names) for names in data_groups)
        lines += [
            f"**Scored on different validation data** ({groups}): another tokenizer or dataset. "
            "Per-token losses under different tokenizers measure different things; losses on "
            "different datasets are not comparable at all. Check the data settings of the sweep.",
            "",
        ]
    if ranked:
        best = ranked[0]
        lines += [
            f"**Fine-tune `{best['candidate']}`**: lowest predicted test loss at the target "
            f"size, {_fmt(best['predicted_loss'])} (interval {_fmt(best['interval_low'])}"
            f"–{_fmt(best['interval_high'])}).",
            "",
        ]
        if best.get("prob_best") is not None:
            lines += [
                f"Probability that `{best['candidate']}` is the best candidate: "
                f"{best['prob_best']:.0%} (it weighs each candidate's own extrapolation error; an "
                "error common to all of them moves every prediction together and does not change "
                "which is best).",
                "",
            ]
            if best["prob_best"] < 0.9 and len(ranked) > 1:
                lines += [
                    f"The choice is uncertain at this budget: `{ranked[1]['candidate']}` has "
                    f"{_fmt_prob(ranked[1]['prob_best'])}. A larger budget would settle it.",
                    "",
                ]
        elif (
            len(ranked) > 1
            and best["interval_high"] is not None
            and ranked[1]["interval_low"] is not None
            and best["interval_high"] > ranked[1]["interval_low"]
        ):
            lines += [
                f"The intervals of `{best['candidate']}` and `{ranked[1]['candidate']}` "
                "overlap: the choice between them is uncertain at this budget.",
                "",
            ]
    elif mixed:
        groups = "; ".join(
            f"{target} examples: " + ", ".join(f"`{n}`" for n in names) for target, names in mixed.items()
        )
        lines += [
            f"**No candidate is chosen**: the candidates were predicted at different target sizes "
            f"({groups}), so their losses are not comparable. Sweep one dataset at a time, or give "
            "every candidate the same `rectlaw.target_size`.",
            "",
        ]
    else:
        lines += ["**No candidate could be ranked**; see the status column.", ""]
    if rounds is not None:
        share = (
            f", {100 * rounds['spent'] / rounds['full']:.0f}% of the full schedule" if rounds["full"] else ""
        )
        lines += [
            f"**Adaptive sweep** (`hydra/sweeper=rectlaw`): {len(rounds['rounds'])} round(s) on rungs of "
            f"{', '.join(str(r['size']) for r in rounds['rounds'])} examples; "
            f"{rounds['spent']:.0f} training examples run{share} (every candidate to the budget).",
            "",
        ]
        for i, rnd in enumerate(rounds["rounds"], start=1):
            out = [f"`{d['name']}` ({d['reason']})" for d in rnd["decisions"] if not d["keep"]]
            ran = len(rnd["decisions"])
            lines.append(
                f"- round {i}, {rnd['size']} examples: {ran} ran; stopped: {', '.join(out) or 'none'}"
            )
        if any(not d["keep"] for rnd in rounds["rounds"] for d in rnd["decisions"]):
            lines += [
                "",
                "Candidates stopped early were judged on short curves, where P(best) has been "
                'overconfident when the best model overtakes the others late (README, "Is P(best) '
                'honest at the rungs?"). If your candidates differ in architecture or pretraining, '
                "check with a lower `hydra.sweeper.threshold` (0.05) or the full schedule.",
            ]
        lines.append("")
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in rows]
    left_out = [(r["candidate"], size, why) for r in rows for size, why in (r.get("outliers") or {}).items()]
    if left_out:
        lines += [
            "",
            "**Runs left out as bad** (they do not enter the predictions; re-run them if in doubt):",
            "",
        ]
        lines += [f"- `{name}`, {size} examples: {why}" for name, size, why in left_out]
    lines += ["", "![curves](selection_summary.png)", ""]
    return "\n".join(lines)


def write_summary(sweep_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write the summary files of ``sweep_dir`` into ``out_dir`` (default: the sweep directory).

    Raises:
        NothingRankedError: after writing them, when no candidate could be ranked, or the
            candidates were predicted at different target sizes (not comparable).
        OSError: the output directory cannot be written (the message names it and the fix).
    """
    root = Path(sweep_dir)
    out = root if out_dir is None else Path(out_dir)
    records = collect_results(root)
    rounds = _adaptive(root, records)  # hydra/sweeper=rectlaw: rounds, eliminations, compute
    running = [r for r in records if r.get("eliminated_at") is None]
    joint = _joint(running)  # the eliminated keep the prediction and P(best) they stopped with
    records = [{**r, **joint.get(r["name"], {})} for r in records]
    # Losses predicted at different target sizes (a sweep over datasets) are not comparable;
    # different validation batches at one size (another tokenizer) are flagged.
    mixed = _split_by(records, "target_size")
    rows = _rows(records, rank=not mixed)
    columns = COLUMNS if rounds is None else [*COLUMNS[:-1], "round", "eliminated_at", COLUMNS[-1]]
    paths = [out / f"selection_summary.{ext}" for ext in ("md", "csv", "json", "png")]
    data_groups = list(_split_by(records, "validation_data").values())
    markdown = _markdown(rows, root, columns, rounds, mixed, data_groups)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    from lightning_rectlaw.core.figures import curve_figure

    fig = curve_figure(
        {_plot_label(r): r for r in records if r.get("sizes")}, title=f"Candidates of {root.name}"
    )
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    size = (round(fig.get_figwidth() * 120), round(fig.get_figheight() * 120))
    try:
        atomic_write_text(paths[0], markdown)
        atomic_write_text(paths[1], buf.getvalue())
        atomic_write_text(
            paths[2],
            json.dumps(
                {"sweep_dir": str(root), "candidates": rows, "results": records}, indent=2, default=str
            ),
        )
        atomic_write_bytes(paths[3], png.getvalue())
        _log_tensorboard(out, png.getvalue(), size, markdown)
    except OSError as err:
        raise OSError(
            f"cannot write the selection summary into {str(out)!r} ({err.strerror or err}); "
            "write it elsewhere with `rectlaw summarize SWEEP_DIR --out DIR`"
        ) from None
    if mixed:
        raise NothingRankedError(
            f"the candidates of {str(root)!r} were predicted at different target sizes "
            f"({'; '.join(f'{t}: {names}' for t, names in mixed.items())}), so none is chosen; sweep "
            f"one dataset at a time or set rectlaw.target_size; the summary is in {paths[0]}"
        )
    if not any(r["rank"] is not None for r in rows):
        reasons = "; ".join(f"{r['candidate']}: {r['status']}" for r in rows)
        raise NothingRankedError(
            f"no candidate of {str(root)!r} could be ranked ({reasons}); the summary is in {paths[0]}"
        )
    return paths


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
    p = best.get("prob_best")
    chance = "" if p is None else f", P(best) {p:.0%}"
    return (
        f"chose {best['candidate']} of {len(rows)} ranked: predicted loss "
        f"{_fmt(best['predicted_loss'])}{interval}{target}{chance}; summary: {md}"
    )


def _log_tensorboard(root: Path, png: bytes, size: tuple[int, int], text: str) -> None:
    from lightning_rectlaw.report.tbevents import write_image_and_text

    # root: where the summary is written; the figure as image "rectlaw/selection", the table as text
    write_image_and_text(root / "tb_summary", "rectlaw/selection", png, size, text)
