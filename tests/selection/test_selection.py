import numpy as np
import pytest

from lightning_rectlaw.core.law import law_value
from lightning_rectlaw.core.metrics import pearcorr, relacc
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.schedule.rule import RuleSettings
from lightning_rectlaw.selection import METHODS, accept_then_stop, select
from lightning_rectlaw.selection.ats import ats_stopped

SIZES = 200.0 * 2 ** np.arange(14)


def _table(missing=False):
    params = [(800, 150, 0.55, 1.2), (300, 40, 0.4, 0.9), (2000, 900, 0.7, 1.0)]
    losses = np.array([law_value(SIZES, B, b, E, dl) for B, dl, b, E in params])
    zero = np.array([law_value(0, B, b, E, dl) for B, dl, b, E in params])
    if missing:
        losses[1, -5] = np.nan
    return LossTable(("a", "b", "c"), SIZES, losses, zero_shot=zero, num_params=np.array([1e8, 3e8, 1e9]))


def test_ats_accepts_power_phase_and_stops_at_the_transition():
    # Pure power law above 3200, flat below: AtS must stop at the flat part.
    sizes = SIZES[:11]
    noise = np.exp(0.003 * (-1.0) ** np.arange(sizes.size))  # alternating, so sigma > 0
    losses = np.where(sizes >= 3200, 50 * sizes**-0.3, 50 * 3200.0**-0.3) * noise
    line, reason = accept_then_stop(sizes, losses)
    assert reason is None
    assert line.sizes.min() == 3200
    assert line.slope == pytest.approx(-0.3, abs=0.01)
    assert ats_stopped(sizes, losses)


def test_ats_final_line_follows_the_papers_code():
    # A clean power law: the walk never stops, and the paper's code then leaves the smallest
    # in-budget point out of the final line (with k points or fewer, all are used).
    sizes = SIZES[:6]
    noise = np.exp(0.002 * (-1.0) ** np.arange(sizes.size))
    losses = 50 * sizes**-0.3 * noise
    line, _ = accept_then_stop(sizes, losses)
    assert list(line.sizes) == list(sizes[:0:-1])  # every point but the smallest, largest first
    assert not ats_stopped(sizes, losses)
    line, _ = accept_then_stop(sizes[:3], losses[:3])
    assert line.sizes.size == 3
    line, _ = accept_then_stop(sizes[:4], losses[:4])
    assert line.sizes.size == 3  # k + 1 points, none rejected: the smallest still goes


def test_ats_reports_too_few_points():
    line, reason = accept_then_stop(SIZES[:2], np.array([2.0, 1.9]))
    assert line is None and "k=3" in reason


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_ranks_all_candidates(method):
    sel = select(_table(), method, budget="1/8")
    assert sorted(sel.ranking) == ["a", "b", "c"]
    scores = [c.score for c in sel.candidates]
    assert scores == sorted(scores)


def test_selection_uses_only_points_within_the_budget():
    sel = select(_table(), "ourfit", budget="1/16")
    for c in sel.candidates:
        assert max(c.sizes_used) <= SIZES[-1] / 16
        assert 0.0 in c.sizes_used  # OurFit includes the zero-shot point


def test_fit_methods_predict_the_true_target_on_exact_curves():
    t = _table()
    sel = select(t, "ourfit", budget="1/8")
    for c in sel.candidates:
        true = t.losses[t.names.index(c.name), -1]
        assert c.predicted_loss == pytest.approx(true, rel=1e-3)
        assert c.interval[0] <= c.predicted_loss <= c.interval[1]


def test_missing_cell_is_skipped_and_unfittable_candidate_is_unrankable():
    t = _table(missing=True)
    sel = select(t, "ats", budget="1/8")
    b = next(c for c in sel.candidates if c.name == "b")
    assert SIZES[-5] not in b.sizes_used
    losses = t.losses.copy()
    losses[2, :] = np.nan
    losses[2, 0] = 3.0
    sel = select(LossTable(t.names, t.sizes, losses, zero_shot=t.zero_shot), "vanillafit", budget="1/8")
    assert sel.ranking == ("b", "a") or sel.ranking == ("a", "b")
    assert "needs 3 points" in sel.unrankable["c"]


def test_select_rejects_bad_options():
    with pytest.raises(ValueError, match="`method` should be one of"):
        select(_table(), "magic")
    with pytest.raises(ValueError, match="`delta` must be a positive number, got 0"):
        select(_table(), "ats", delta=0)
    with pytest.raises(ValueError, match=r"`k` must be an integer of at least 2 .*got 'abc'"):
        select(_table(), "robust_ats", k="abc")
    with pytest.raises(
        ValueError,
        match=r"`method='ats'` has no option\(s\) \['holdouts'\]; its options are \['delta', 'k'\]",
    ):
        select(_table(), "ats", holdouts=2)
    with pytest.raises(ValueError, match="larger than the largest subset"):
        select(_table(), "ats", budget=1e9)


def test_metrics_against_reference_formulas():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    ref = np.sum((a - a.mean()) * (b - b.mean())) / np.sqrt(
        np.sum((a - a.mean()) ** 2) * np.sum((b - b.mean()) ** 2)
    )
    assert pearcorr(a, b) == pytest.approx(100 * ref)
    assert relacc(1.0, np.array([1.0, 2.0])) == 100.0
    assert relacc(2.0, np.array([1.0, 2.0])) == 0.0


def test_every_method_is_one_registry_entry_that_entry_points_read():
    from lightning_rectlaw.cli import main

    for entry in METHODS.values():
        assert entry.label and entry.description and entry.schedule in ("all", "ats", "pooled")
        assert all(need in ("zero_shot", "num_params") for need in entry.needs)
        assert entry.min_points(entry.defaults) >= 0
    assert METHODS["ats"].defaults == {"k": 3, "delta": 5.0}
    assert {"k", "delta", "holdouts", "threshold", "floor"} <= set(METHODS["robust_ats"].defaults)
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["methods"]) == 0
    for name, entry in METHODS.items():
        assert name in out.getvalue() and entry.label in out.getvalue()


@pytest.mark.parametrize("method", ["robust_ats", "ats", "pooled", "ourfit", "vanillafit"])
def test_every_fitted_curve_keeps_one_predict_and_interval_contract(method):
    table = _table()
    sel = select(table, method, budget="1/8", level=0.8)
    for c in sel.candidates:
        assert float(np.asarray(c.fit.predict(sel.target)).ravel()[0]) == pytest.approx(c.predicted_loss)
        lo, hi = c.fit.interval(sel.target, 0.8)
        assert isinstance(lo, float | np.floating) and isinstance(hi, float | np.floating)
        assert (lo, hi) == pytest.approx(c.interval)
        assert lo <= c.predicted_loss <= hi


@pytest.mark.parametrize("method", METHODS)
def test_a_selection_plot_shows_the_points_each_decision_read(method):
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PathCollection

    sel = select(_table(), method, budget="1/8")
    ax = sel.plot().axes[0]
    points = [col for col in ax.collections if isinstance(col, PathCollection)]  # not the error bars
    drawn = sorted(x for col in points for x in np.asarray(col.get_offsets())[:, 0])
    read = sorted(s for c in sel.candidates if c.rankable for s in (c.sizes_run or c.sizes_used) if s > 0)
    assert drawn == pytest.approx(read)  # also for the default, whose line carries no points of its own


def test_an_adaptive_selection_plot_shows_only_what_each_candidate_ran():
    pytest.importorskip("matplotlib")
    from lightning_rectlaw.schedule.replay import simulate

    table = _table()
    run = simulate(table, "1/4", settings=RuleSettings(prob_threshold=0.3, min_survivors=1))
    assert run.eliminated_at  # someone stopped early
    from matplotlib.collections import PathCollection

    ax = run.selection.plot().axes[0]
    points = [col for col in ax.collections if isinstance(col, PathCollection)]
    drawn = {round(x) for col in points for x in np.asarray(col.get_offsets())[:, 0]}
    assert max(drawn) == table.max_size / 4  # the survivor ran the budget
    stopped = next(iter(run.eliminated_at))
    mine = {col.get_label(): col for col in points}[stopped]
    assert np.asarray(mine.get_offsets())[:, 0].max() <= run.eliminated_at[stopped]


def test_many_candidates_are_told_apart_by_colour_and_marker():
    pytest.importorskip("matplotlib")
    from lightning_rectlaw.core.presentation.figures import candidate_styles

    assert len(set(candidate_styles(30))) == 30  # the colour cycle has 10: markers make the rest differ
    names = tuple(f"m{i}" for i in range(14))
    losses = np.array([law_value(SIZES, 800, 0.5, 1 + i / 10, 100) for i in range(14)])
    table = LossTable(names, SIZES, losses)
    handles, labels = table.plot().axes[0].get_legend_handles_labels()
    assert labels == list(names)  # every candidate in the legend, none hidden
    assert len({(h.get_color(), h.get_marker()) for h in handles}) == 14
