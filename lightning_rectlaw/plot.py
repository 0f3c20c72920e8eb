"""Log-log figures of measured losses with the fitted rectified and vanilla laws."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lightning_rectlaw.law import law_value

__all__ = ["curve_figure"]


def curve_figure(curves: Mapping[str, Any], title: str = "Fine-tuning scaling curves"):
    """One log-log axes: each candidate's points, fitted rectified law (solid), vanilla (dotted),
    and the predicted loss at the target size with its interval.

    ``curves`` maps a name to a ``RectifiedLawResult`` or a dict with the same fields.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, c) in enumerate(curves.items()):
        c = c if isinstance(c, Mapping) else vars(c)
        color = colors[i % len(colors)]
        sizes, losses = np.asarray(c.get("sizes") or [], float), np.asarray(c.get("losses") or [], float)
        if sizes.size == 0:
            continue
        ax.scatter(sizes, losses, color=color, s=18, zorder=3, label=name)
        target = float(c.get("target_size") or sizes.max())
        grid = np.geomspace(max(1.0, sizes.min() / 2), max(target, sizes.max()) * 1.2, 200)
        if c.get("law"):
            ax.plot(grid, law_value(grid, **c["law"]), color=color, lw=1.5)
        if c.get("vanilla_law"):
            ax.plot(grid, law_value(grid, **c["vanilla_law"]), color=color, lw=1, ls=":")
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("fine-tuning examples D")
    ax.set_ylabel("test loss")
    ax.set_title(
        title + "\n(solid: rectified law, dotted: vanilla, dashed: zero-shot, *: prediction)", fontsize=9
    )
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
