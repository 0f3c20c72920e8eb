"""The selection summary as markdown: the choice and how sure it is, the adaptive rounds, the
table of every candidate, the runs left out, the figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_rectlaw.core.presentation.formatting import format_number


def _fmt(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return format_number(v, 4, missing="–")
    return "–" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def _fmt_prob(p: float | None) -> str:
    return "an unknown probability" if p is None else f"{p:.0%}"


def markdown(
    rows: list[dict[str, Any]],
    sweep: Path,
    columns: list[str],
    rounds: dict | None = None,
    mixed: dict[Any, list[str]] | None = None,
    data_groups: list[list[str]] | None = None,
    refused: Any = None,
) -> str:
    """The summary's markdown. ``mixed``: the candidates by target size, when they differ;
    ``data_groups``: the candidates by validation batches, when they differ; ``refused``: why
    the candidates are not ranked together (an ``Incomparable``, with ``problem`` and ``fix``)."""
    ranked = [r for r in rows if r["rank"] is not None]
    blocks = [f"# Selection summary — {sweep}"]  # separated by blank lines
    if ranked and data_groups:
        groups = "; ".join(", ".join(f"`{n}`" for n in names) for names in data_groups)
        blocks.append(
            f"**Scored on different validation data** ({groups}): another tokenizer or dataset. "
            "Per-token losses under different tokenizers measure different things; losses on "
            "different datasets are not comparable at all. Check the data settings of the sweep."
        )
    blocks += _choice(ranked) if ranked else [_no_choice(mixed, refused)]
    blocks += _rounds(rounds) if rounds is not None else []
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    blocks.append("\n".join(table + ["| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in rows]))
    blocks += _notes(rows, ranked)
    blocks.append("![curves](selection_summary.png)")
    return "\n\n".join(blocks) + "\n"


def _choice(ranked: list[dict[str, Any]]) -> list[str]:
    """The choice, and how sure it is: its P(best), or whether the intervals overlap."""
    best = ranked[0]
    blocks = [
        f"**Fine-tune `{best['candidate']}`**: lowest predicted test loss at the target "
        f"size, {_fmt(best['predicted_loss'])} (interval {_fmt(best['interval_low'])}"
        f"–{_fmt(best['interval_high'])})."
    ]
    if best.get("prob_best") is not None:
        blocks.append(
            f"Probability that `{best['candidate']}` is the best candidate: "
            f"{best['prob_best']:.0%} (it weighs each candidate's own extrapolation error; an "
            "error common to all of them moves every prediction together and does not change "
            "which is best)."
        )
        if best["prob_best"] < 0.9 and len(ranked) > 1:
            blocks.append(
                f"The choice is uncertain at this budget: `{ranked[1]['candidate']}` has "
                f"{_fmt_prob(ranked[1]['prob_best'])}. A larger budget would settle it."
            )
    elif (
        len(ranked) > 1
        and best["interval_high"] is not None
        and ranked[1]["interval_low"] is not None
        and best["interval_high"] > ranked[1]["interval_low"]
    ):
        blocks.append(
            f"The intervals of `{best['candidate']}` and `{ranked[1]['candidate']}` "
            "overlap: the choice between them is uncertain at this budget."
        )
    return blocks


def _rounds(rounds: dict[str, Any]) -> list[str]:
    """The adaptive sweep's rounds: the compute spent, who stopped where and why."""
    share = (
        f", {100 * rounds['spent'] / rounds['full']:.0f}% of the full schedule "
        "(every candidate to the budget)"
        if rounds["full"]
        else ""
    )
    if rounds.get("allowance"):
        share += (
            f", {100 * rounds['spent'] / rounds['allowance']:.0f}% of the compute budget "
            f"({rounds['allowance']:.0f} examples planned; ran past the budget of "
            f"{rounds['budget']:.0f}: {', '.join(f'`{n}`' for n in rounds['past_budget']) or 'none'})"
        )
    lines = [
        f"**Adaptive sweep** (`hydra/sweeper=rectlaw`): {len(rounds['rounds'])} round(s) on rungs of "
        f"{', '.join(str(r['size']) for r in rounds['rounds'])} examples; "
        f"{rounds['spent']:.0f} training examples run{share}.",
        "",
    ]
    for i, rnd in enumerate(rounds["rounds"], start=1):
        out = [f"`{d['name']}` ({d['reason']})" for d in rnd["decisions"] if not d["keep"]]
        lines.append(
            f"- round {i}, {rnd['size']} examples: {len(rnd['decisions'])} ran; "
            f"stopped: {', '.join(out) or 'none'}"
        )
    blocks = ["\n".join(lines)]  # the paragraph, then the rounds as a list
    if any(not d["keep"] for rnd in rounds["rounds"] for d in rnd["decisions"]):
        blocks.append(
            "Candidates stopped early were judged on short curves, where P(best) has been "
            'overconfident when the best model overtakes the others late (docs/adaptive.md, "Is P(best) '
            'honest at the rungs?"). If your candidates differ in architecture or pretraining, '
            "check with a lower `hydra.sweeper.prob_threshold` (0.05) or the full schedule."
        )
    return blocks


def _notes(rows: list[dict[str, Any]], ranked: list[dict[str, Any]]) -> list[str]:
    """What the table does not say: candidates without an interval, earlier runs replaced, runs
    left out as bad."""
    blocks = []
    if bare := [r for r in ranked if r["interval_low"] is None]:
        points = sorted({r["subsets_run"] for r in bare})
        names = ", ".join(f"`{r['candidate']}`" for r in bare)
        blocks.append(
            f"**No interval** for {names}: with "
            f"{' or '.join(map(str, points))} subset(s) within the budget the method cannot estimate how "
            "far its extrapolation may err. A larger `rectlaw.budget` or a smaller `rectlaw.min_size` "
            "runs more subsets and gives one."
        )
    if replaced := [r for r in rows if r.get("replaced")]:
        blocks.append(
            "**Earlier runs of a candidate** in other job directories are left out; the latest "
            "is kept: "
            + "; ".join(f"`{r['candidate']}` (left out: {', '.join(r['replaced'])})" for r in replaced)
        )
    left_out = [(r["candidate"], size, why) for r in rows for size, why in (r.get("outliers") or {}).items()]
    if left_out:
        blocks.append(
            "**Runs left out as bad** (they do not enter the predictions; re-run them if in doubt):"
        )
        blocks.append("\n".join(f"- `{name}`, {size} examples: {why}" for name, size, why in left_out))
    return blocks


def _no_choice(mixed: dict[Any, list[str]] | None, refused: Any) -> str:
    """The paragraph of a summary that ranks no candidate, and why."""
    if mixed:
        groups = "; ".join(
            f"{target} examples: " + ", ".join(f"`{n}`" for n in names) for target, names in mixed.items()
        )
        return (
            f"**No candidate is chosen**: the candidates were predicted at different target sizes "
            f"({groups}), so their losses are not comparable. Sweep one dataset at a time, or give "
            "every candidate the same `rectlaw.target_size`."
        )
    if refused is not None:
        return (
            f"**No candidate is chosen**: {_fmt(refused.problem)}. What each measured is in the "
            f"table. Fix: {_fmt(refused.fix)}."
        )
    return "**No candidate could be ranked**; see the status column."
