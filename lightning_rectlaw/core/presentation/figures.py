"""Log-log figures of measured losses, each prediction drawn on the curve that made it."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np

from lightning_rectlaw.core.law import law_value

#: Point markers beyond the first round of colours ("x" and "*" mean a run left out and a prediction).
_MARKERS = ("o", "s", "^", "D", "v", "P", "h", "<", ">", "p")


def candidate_styles(n: int) -> list[tuple[str, str]]:
    """A ``(colour, marker)`` per candidate, no two alike for up to 100 candidates: Matplotlib's colour
    cycle, and once it has been used up (10 colours by default) the next marker with it."""
    import matplotlib

    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return [(colors[i % len(colors)], _MARKERS[(i // len(colors)) % len(_MARKERS)]) for i in range(n)]


def curve_figure(curves: Mapping[str, Any], title: str = "Fine-tuning scaling curves", ax: Any = None):
    """One log-log axes: each candidate's points, the predicting method's curve (solid) ending in the
    prediction at the target size (star, with its interval), runs left out as outliers (crosses) and, for
    reference, the rectified law fitted to the points (dotted) when the method's curve is another one.
    ``curves`` maps a name to a ``RectifiedLawResult`` or a dict with the same fields. Drawn into ``ax`` when
    given (figures compose), else on a bare Matplotlib ``Figure``: the caller's pyplot backend and state are
    left alone. Returns the figure."""
    fig, ax, own = _axes(ax)
    any_reference = False
    for (name, c), (color, marker) in zip(curves.items(), candidate_styles(len(curves))):
        c = _fields(c)
        sizes, losses = np.asarray(c.get("sizes") or [], float), np.asarray(c.get("losses") or [], float)
        if sizes.size == 0:
            continue
        dropped = {str(int(float(k))) for k in (c.get("outliers") or {})}  # JSON made the int keys strings
        left_out = np.array([str(int(s)) in dropped for s in sizes], dtype=bool)
        ax.scatter(
            sizes[~left_out], losses[~left_out], color=color, marker=marker, s=18, zorder=3, label=name
        )
        if left_out.any():
            ax.scatter(sizes[left_out], losses[left_out], color=color, marker="x", s=30, zorder=3)
        target = float(c.get("target_size") or sizes.max())
        if own := c.get("prediction_curve"):
            ax.plot(own["sizes"], own["losses"], color=color, lw=1.5)
        if c.get("law") and c.get("method") != "ourfit":
            grid = np.geomspace(max(1.0, sizes.min() / 2), max(target, sizes.max()) * 1.2, 200)
            ax.plot(grid, law_value(grid, **c["law"]), color=color, lw=0.8, ls=":", alpha=0.7)
            any_reference = True
        if c.get("zero_shot_loss"):
            ax.axhline(c["zero_shot_loss"], color=color, lw=0.6, ls="--", alpha=0.6)
        if c.get("predicted_loss") is not None:
            lo_hi = c.get("interval")
            if lo_hi is not None and np.all(np.isfinite(lo_hi)):
                yerr = [[c["predicted_loss"] - lo_hi[0]], [lo_hi[1] - c["predicted_loss"]]]
                ax.errorbar(
                    [target], [c["predicted_loss"]], yerr=yerr, color=color, marker="*", ms=10, capsize=3
                )
            else:
                ax.plot([target], [c["predicted_loss"]], color=color, marker="*", ms=10)
    methods = sorted({_fields(c).get("method") or "?" for c in curves.values()})
    legend = f"solid: {', '.join(methods)} prediction curve, *: prediction, x: run left out, "
    legend += "dotted: rectified-law fit (reference), " if any_reference else ""
    legend += "dashed: zero-shot"
    _finish(fig, ax, "\n".join([title, *textwrap.wrap(f"({legend})", 100)]), 8, len(curves), own)
    return fig


def _fields(curve: Any) -> Mapping[str, Any]:
    """A curve's fields: the dict itself, or a ``RectifiedLawResult``'s attributes."""
    return curve if isinstance(curve, Mapping) else vars(curve)


def _axes(ax: Any) -> tuple[Any, Any, bool]:
    """The figure and axes to draw on: ``ax``'s, or a new bare ``Figure``'s (``own``: made here)."""
    if ax is not None:
        return ax.figure, ax, False
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    return fig, fig.add_subplot(), True


def _finish(fig: Any, ax: Any, title: str, fontsize: int, n: int, own: bool) -> None:
    """Log-log axes with their labels and title, and the candidates' legend: inside the axes for a
    few, beside them (in columns of 20, the figure widened) for more, where it would hide the curves.
    The loss axis reads 2, 3, 4 (a loss curve spans less than a decade), not 2x10^0."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("fine-tuning examples D")
    ax.set_ylabel("test loss")
    ax.set_title(title, fontsize=fontsize)
    if n <= 10:
        ax.legend(fontsize=7, loc="best")
    else:
        columns = -(-n // 20)
        if own:  # widen only a figure of our own
            fig.set_figwidth(fig.get_figwidth() + 2.2 * columns)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=columns, borderaxespad=0)
    if own:
        fig.tight_layout()


def table_figure(table: Any, title: str | None = None, ax: Any = None):
    """Every candidate's measured losses against subset size, one line each, on log-log axes
    (the zero-shot loss as a dashed level where known), into ``ax`` or a bare ``Figure`` as above."""
    fig, ax, own = _axes(ax)
    for i, (name, (color, marker)) in enumerate(zip(table.names, candidate_styles(len(table.names)))):
        keep = np.isfinite(table.losses[i])
        sizes, losses = table.sizes[keep], table.losses[i][keep]
        ax.plot(sizes, losses, color=color, marker=marker, ms=3, lw=1, label=name)
        if table.zero_shot is not None and np.isfinite(table.zero_shot[i]):
            ax.axhline(table.zero_shot[i], color=color, lw=0.6, ls="--", alpha=0.6)
    _finish(fig, ax, title or f"{len(table.names)} candidates ({table.source})", 9, len(table.names), own)
    return fig
