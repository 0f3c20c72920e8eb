"""The default selector `robust_ats`: exact AtS on screened points, with calibrated uncertainty."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from lightning_rectlaw.core.law import law_value
from lightning_rectlaw.core.metrics import brier, pool_choices
from lightning_rectlaw.core.predictive import PredictiveLine, calibrate, prob_best
from lightning_rectlaw.core.screening import OutlierWarning, screen_outliers
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.schedule.evaluate import evaluate
from lightning_rectlaw.selection import DEFAULT_METHOD, predict_curve, select

SIZES = 200.0 * 2 ** np.arange(14)


def _table(seed=0, n=12, noise=0.01):
    """Competing rectified-law curves (close target losses, crossing), with 1% noise."""
    rng = np.random.default_rng(seed)
    rows, zero = [], []
    for _ in range(n):
        B, dl, beta, E = (
            rng.uniform(100, 400),
            rng.uniform(50, 3000),
            rng.uniform(0.3, 0.5),
            rng.uniform(1.0, 1.1),
        )
        rows.append(law_value(SIZES, B, beta, E, dl) * np.exp(noise * rng.standard_normal(SIZES.size)))
        zero.append(law_value(0.0, B, beta, E, dl))
    return LossTable(tuple(f"m{i}" for i in range(n)), SIZES, np.array(rows), zero_shot=np.array(zero))


def test_robust_ats_is_the_default_and_ranks_exactly_as_ats_on_clean_curves():
    assert DEFAULT_METHOD == "robust_ats"
    table = _table()
    for budget in ("1/8", "1/32", "1/128"):
        robust, ats = select(table, budget=budget), select(table, "ats", budget=budget)
        assert robust.ranking == ats.ranking
        np.testing.assert_allclose(robust.scores_for(table.names), ats.scores_for(table.names))
        assert not robust.outliers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_bad_run_never_carries_a_bottom_half_candidate_to_first(seed):
    table = _table(seed)
    budget = table.max_size / 16
    in_budget = np.flatnonzero(table.sizes <= budget)
    order = np.argsort(table.losses[:, -1])
    flips = 0
    for i in order[len(order) // 2 :]:  # the bottom half by true target loss
        for back in (2, 3):  # the points at budget/2 and budget/4
            j = in_budget[-back]
            losses = table.losses.copy()
            losses[i, j] *= 1.3
            bad = LossTable(table.names, table.sizes, losses, zero_shot=table.zero_shot)
            flips += select(bad, "ats", budget=budget).best == table.names[i]
            with pytest.warns(OutlierWarning, match=table.names[i]):
                sel = select(bad, budget=budget)
            assert sel.best != table.names[i]
            assert list(sel.outliers) == [table.names[i]]
            assert list(sel.outliers[table.names[i]]) == [table.sizes[j]]
            assert "above its neighbours" in sel.outliers[table.names[i]][table.sizes[j]]
    assert flips >= 4  # the fault is real: it carries plain AtS's pick to the bad candidate


def test_diverged_but_finite_runs_are_flagged_and_excluded():
    table = _table()
    losses = table.losses.copy()
    losses[3, 8] = 1e21
    bad = LossTable(table.names, table.sizes, losses, zero_shot=table.zero_shot)
    with pytest.warns(OutlierWarning, match="diverged"):
        sel = select(bad, budget="1/4")
    c = next(c for c in sel.candidates if c.name == "m3")
    assert table.sizes[8] in c.outliers and "zero-shot" in c.outliers[table.sizes[8]]
    clean = next(c for c in select(table, budget="1/4").candidates if c.name == "m3")
    assert c.predicted_loss == pytest.approx(clean.predicted_loss, rel=0.05)
    # without a zero-shot loss the same run is far off its curve
    screen = screen_outliers(bad.sizes, bad.losses)
    assert (
        list(screen.outliers[3]) == [table.sizes[8]] and "off the curve" in screen.outliers[3][table.sizes[8]]
    )


def test_a_curve_left_with_too_few_clean_points_is_not_ok():
    sizes = np.array([100.0, 200, 400, 800])
    losses = np.array([2.0, 1.9, 1e21, 1e20])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutlierWarning)
        pred = predict_curve(sizes, losses, target=6400, zero_shot=2.2)
    assert pred.status.startswith("no prediction: AtS needs k=3 points")
    assert "after leaving out 2 bad run(s)" in pred.status
    assert set(pred.outliers) == {400.0, 800.0} and pred.predicted_loss is None


def test_screening_flags_nothing_on_the_published_tables(benchmark_dir):
    for name in ("flan", "wmt19"):
        table = LossTable.read_csv(benchmark_dir / f"{name}.csv")
        for r in (8, 16, 32, 64, 128, 256, 512):
            with warnings.catch_warnings():
                warnings.simplefilter("error", OutlierWarning)
                robust = select(table, budget=f"1/{r}")
            assert robust.ranking == select(table, "ats", budget=f"1/{r}").ranking


def test_prob_best_matches_monte_carlo_and_sums_to_one():
    rng = np.random.default_rng(0)
    means, sds = rng.normal(size=7), rng.uniform(0.2, 1.0, size=7)
    draws = means + sds * rng.standard_normal((400_000, 7))
    reference = np.bincount(np.argmin(draws, axis=1), minlength=7) / len(draws)
    p = prob_best(means, sds)
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p, reference, atol=0.004)


def test_calibration_separates_a_common_shift_from_each_candidates_own_error():
    rng = np.random.default_rng(1)
    common = np.array([0.05, 0.04, 0.06])  # every candidate off the same way at each depth
    rates = common + 0.01 * rng.standard_normal((40, 3))
    cal = calibrate(rates)
    assert np.median(cal.tau_own) == pytest.approx(0.01, rel=0.3)
    assert np.median(cal.tau_all) == pytest.approx(0.05, rel=0.2)
    assert cal.observations == 120
    assert calibrate(np.full((3, 3), np.nan)).observations == 0


def test_predictive_line_interval_widens_with_distance_and_needs_a_scale():
    line = PredictiveLine(lambda d: 10 * d**-0.2, anchor_size=1000.0, tau=0.05)
    lo1, hi1 = line.interval(4000, 0.8)
    lo2, hi2 = line.interval(64000, 0.8)
    assert lo1 < line.predict(4000)[0] < hi1 and hi2 / lo2 > hi1 / lo1
    assert line.interval(1000, 0.8)[0] == pytest.approx(line.predict(1000)[0])
    assert PredictiveLine(line.curve, 1000.0, float("nan")).interval(4000) == (0.0, float("inf"))
    with pytest.raises(ValueError, match="`level` must be in"):
        line.interval(4000, 1.5)


def test_user_level_metrics_against_brute_force():
    table = _table(n=8)
    rows = evaluate(
        table, ["subtuning", "robust_ats"], [8], metrics=["HitRate", "Regret", "Brier", "Coverage80"]
    )
    got = {(r.method, r.metric): r.value for r in rows}
    assert ("subtuning", "Brier") not in got and ("subtuning", "Coverage80") not in got  # none to score
    truth = table.losses[:, -1]
    scores = select(table, "subtuning", budget="1/8").scores_for(table.names)
    rng = np.random.default_rng(0)
    pools = np.argsort(rng.random((2000, 8)), axis=1)[:, :5]
    hits, regrets = [], []
    for pool in pools:  # one pool at a time, written out
        pick = pool[np.argmin(scores[pool])]
        best = truth[pool].min()
        hits.append(truth[pick] == best)
        regrets.append((truth[pick] - best) / best)
    assert got[("subtuning", "HitRate")] == pytest.approx(100 * np.mean(hits))
    assert got[("subtuning", "Regret")] == pytest.approx(100 * np.mean(regrets))
    assert 0 <= got[("robust_ats", "Brier")] <= 2 and 0 <= got[("robust_ats", "Coverage80")] <= 100


def test_pool_choices_skip_unrankable_and_brier_reference():
    scores = np.array([np.nan, 2.0, 1.0, np.nan])
    assert pool_choices(scores, np.array([[0, 1], [0, 3], [1, 2]])).tolist() == [1, 0, 2]
    assert brier(np.array([1.0, 0.0]), np.array([1.0, 2.0])) == 0.0
    assert brier(np.array([0.0, 1.0]), np.array([1.0, 2.0])) == 2.0


def test_evaluate_rejects_unknown_metrics_and_tiny_pools():
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['Accuracy'\]"):
        evaluate(_table(), ["ats"], [8], metrics=["Accuracy"])
    with pytest.raises(ValueError, match="`pool_size` must be at least 2"):
        evaluate(_table(), ["ats"], [8], metrics=["HitRate"], pool_size=1)


DATA = Path(__file__).resolve().parents[2] / "data"


def test_committed_zoo_tables_have_crossing_curves_and_no_false_flags():
    cross = LossTable.read_csv(DATA / "zoo_cross.csv")
    assert len(cross) >= 8 and set(cross.families) == {"gpt2", "llama"}
    early, final = cross.column(64), cross.column(cross.max_size)
    assert np.argmin(early) != np.argmin(final)  # the best early is not the best after full fine-tuning
    assert np.argmax(early) == np.argmin(final)  # the untrained large Llama goes from worst to best
    for table in (cross, LossTable.read_csv(DATA / "zoo_stdlib.csv")):
        for r in (4, 8, 16, 32):
            with warnings.catch_warnings():
                warnings.simplefilter("error", OutlierWarning)
                robust = select(table, budget=f"1/{r}")
            assert robust.ranking == select(table, "ats", budget=f"1/{r}").ranking


def test_committed_demo_table_is_the_demo_run_to_its_full_set_and_crosses_late():
    demo = LossTable.read_csv(DATA / "demo_losses.csv")
    assert demo.names == ("small_gpt2", "tiny_gpt2", "tiny_llama") and demo.max_size == 5934
    # small_gpt2 leads every subset up to 741 examples; tiny_llama is the best after the full set
    for size in demo.sizes[demo.sizes <= 741]:
        assert demo.names[int(np.argmin(demo.column(size)))] == "small_gpt2"
    assert demo.names[int(np.argmin(demo.column(demo.max_size)))] == "tiny_llama"


def test_screening_and_spread_options_are_checked():
    from lightning_rectlaw.core.predictive import inflate

    with pytest.raises(ValueError, match="need threshold > 0, floor >= 0, diverged_factor > 1"):
        screen_outliers(SIZES, np.ones((1, SIZES.size)), threshold=0)
    with pytest.raises(ValueError, match="columns but there are"):
        screen_outliers(SIZES, np.ones((1, 3)))
    with pytest.raises(
        ValueError, match=r"`scheme` should be one of \('floor', 'prior', 'scale'\), got 'max'"
    ):
        inflate(np.array([0.1]), 0.2, "max")
    with pytest.raises(ValueError, match=r"`scheme` must be one of \['floor', 'prior', 'scale'\], got 'max'"):
        select(_table(), budget="1/8", scheme="max")


def test_committed_code_zoo_table_holds_both_zoos_and_the_adaptive_default_keeps_its_best():
    from lightning_rectlaw.schedule.replay import simulate

    code = LossTable.read_csv(DATA / "zoo_code.csv")
    assert len(code) == 14 and all(n.startswith(("std-", "x-")) for n in code.names)
    assert {"std-gpt2-s-long", "x-gpt2-s-long"} <= set(code.names)  # the same name from each zoo
    best = code.names[int(np.argmin(code.column(code.max_size)))]
    for r in (8, 16, 32, 64):
        run = simulate(code, f"1/{r}")
        assert run.eliminated_at and run.selection.best == best == select(code, budget=f"1/{r}").best


def test_committed_props_zoo_table_is_hard_and_the_adaptive_default_keeps_its_best_running():
    from lightning_rectlaw.schedule.replay import simulate

    props = LossTable.read_csv(DATA / "zoo_props.csv")
    assert len(props) == 14
    best = props.names[int(np.argmin(props.column(props.max_size)))]
    # another model leads every subset up to 1024 examples: the best overtakes late
    assert all(props.names[int(np.argmin(props.column(s)))] != best for s in props.sizes[props.sizes <= 1024])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutlierWarning)
        for r in (8, 16, 32, 64):
            run = simulate(props, f"1/{r}")
            assert run.eliminated_at and best not in run.eliminated_at
