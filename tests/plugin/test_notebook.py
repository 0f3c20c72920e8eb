"""Notebook and library ergonomics: short reprs, HTML, DataFrames, figures that leave pyplot alone."""

import subprocess
import sys

import numpy as np
import pytest

from lightning_rectlaw import LossTable, RectifiedLawResult, evaluate, select
from lightning_rectlaw.core.table import TableError


def big_table(n=200):
    rng = np.random.default_rng(0)
    sizes = 200.0 * 2.0 ** np.arange(10)
    scale = rng.uniform(0.8, 1.2, size=(n, 1))
    losses = scale * (2.0 / (50 + sizes**0.4) + 0.5) * rng.uniform(0.99, 1.01, size=(n, sizes.size))
    return LossTable(
        tuple(f"model-{i}" for i in range(n)),
        sizes,
        losses,
        zero_shot=scale.ravel() * 0.8,
        num_params=rng.uniform(1e8, 1e9, n),
        source="synthetic",
    )


def test_reprs_are_one_short_line_and_html_is_bounded():
    table = big_table()
    sel = select(table, budget="1/8")
    for obj in (table, sel):
        text = repr(obj)
        assert len(text) < 200 and "\n" not in text, text
        html = obj._repr_html_()
        assert html.startswith("<table>") and "more</td>" in html  # 200 rows, 20 shown
        assert len(html) < 20_000
    assert repr(sel).startswith("Selection(robust_ats, budget=12800, target=102400: best=")
    assert f"best={sel.best!r}" in repr(sel)
    assert repr(table) == (
        "LossTable(200 candidates x 10 sizes 200..102400, with zero-shot, parameter counts, "
        "source='synthetic')"
    )
    assert len(repr(sel.candidates[0])) < 400  # the fitted curve object is not dumped


def test_result_repr_is_its_headline():
    r = RectifiedLawResult(
        sizes=[800, 400], losses=[2.0, 2.2], target_size=6400, predicted_loss=1.8, interval=(1.7, 1.9)
    )
    r.status = "ok"
    assert repr(r).startswith("RectifiedLawResult(predicted loss 1.8000 (95% interval 1.7000-1.9000) at 6400")
    assert len(repr(r)) < 200


def test_to_pandas_on_table_selection_and_evaluate_rows():
    pd = pytest.importorskip("pandas")
    table = big_table(12)
    frame = table.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (12, 1 + 10 + 1)  # 0, sizes, size
    assert frame.loc["model-3", 800] == pytest.approx(table.losses[3, 2])
    sel = select(table, budget="1/8")
    sf = sel.to_pandas()
    assert list(sf.index) == list(sel.ranking)  # rank order
    assert sf["prob_best"].sum() == pytest.approx(1.0, abs=1e-6)
    assert list(sf["prob_best"]) == [sel.prob_best[n] for n in sel.ranking]
    rows = evaluate(table, ["ats", "subtuning"], [8, 16])
    long = rows.to_pandas()
    assert list(long.columns) == ["method", "ratio", "metric", "value"] and len(long) == 8
    wide = rows.to_pandas(wide=True)
    assert wide.loc[("RelAcc", "ats"), 8] == pytest.approx(
        next(r.value for r in rows if r.method == "ats" and r.ratio == 8 and r.metric == "RelAcc")
    )


def test_a_table_round_trips_through_pandas_and_a_users_frame_is_checked():
    pd = pytest.importorskip("pandas")
    table = big_table(5)
    table.losses[2, 4] = np.nan  # a missing run
    back = LossTable.from_pandas(table.to_pandas())
    assert back.names == table.names and np.array_equal(back.sizes, table.sizes)
    assert np.array_equal(back.losses, table.losses, equal_nan=True)
    assert np.array_equal(back.zero_shot, table.zero_shot) and np.array_equal(
        back.num_params, table.num_params
    )
    # a frame built by hand: names in a column, sizes as strings, no zero-shot
    mine = pd.DataFrame({"name": ["a", "b"], "200": [3.0, 2.9], "400": [2.8, 2.8], "800": [2.5, 2.7]})
    assert select(LossTable.from_pandas(mine), "subtuning", budget=800).best == "a"
    with pytest.raises(TableError, match=r"finite and positive, candidate 'b' has \[-1.0\]"):
        LossTable.from_pandas(mine.assign(**{"400": [2.8, -1.0]}))


@pytest.mark.slow
def test_plot_returns_a_figure_and_leaves_the_pyplot_backend_alone():
    code = """
import matplotlib
matplotlib.use("svg")  # the caller's backend (an inline backend in a notebook)
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
import numpy as np
from lightning_rectlaw import LossTable, RectifiedLawResult, select
sizes = 200.0 * 2.0 ** np.arange(8)
losses = np.vstack([(2.0 / (50 + sizes**0.4) + b) for b in (0.5, 0.55, 0.6)])
table = LossTable(("a", "b", "c"), sizes, losses)
sel = select(table, budget="1/4")
r = RectifiedLawResult(sizes=[800, 400, 200], losses=[1.0, 1.1, 1.2], target_size=25600,
                       predicted_loss=0.8, interval=(0.7, 0.9), status="ok")
figs = [table.plot(), sel.plot(), r.plot("a")]
assert all(isinstance(f, Figure) for f in figs)
assert all(f.axes and f.axes[0].get_xscale() == "log" for f in figs)
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert plt.get_fignums() == []  # not registered with pyplot
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_to_pandas_without_pandas_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"to_pandas\(\) needs pandas: pip install pandas"):
        big_table(3).to_pandas()
