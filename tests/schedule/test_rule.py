"""Successive elimination: the rule's decisions and guards, and the offline replay."""

import numpy as np
import pytest

from lightning_rectlaw import LossTable
from lightning_rectlaw.cli import main as rectlaw
from lightning_rectlaw.schedule.evaluate import evaluate
from lightning_rectlaw.schedule.replay import simulate
from lightning_rectlaw.schedule.rule import RuleSettings, schedule_round
from lightning_rectlaw.selection import select

SIZES = 200.0 * 2.0 ** np.arange(10)  # 200 .. 102400


def field_of(n_close=2, n_far=6, seed=0):
    """Two close contenders and clearly worse candidates (parallel power laws, a little noise)."""
    rng = np.random.default_rng(seed)
    offsets = [0.0, 0.01][:n_close] + list(np.linspace(0.4, 0.9, n_far))
    rows = [(3.0 * SIZES**-0.3 + 1.0 + o) * rng.uniform(0.998, 1.002, SIZES.size) for o in offsets]
    names = [f"close{i}" for i in range(n_close)] + [f"far{i}" for i in range(n_far)]
    return LossTable(tuple(names), SIZES, np.array(rows), zero_shot=np.array([5.0] * len(rows)))


def test_rungs_double_up_to_the_budget_and_skip_those_too_small_to_judge():
    assert RuleSettings(rungs=4).plan(SIZES, 51200, 51200) == [6400, 12800, 25600, 51200]
    assert RuleSettings().plan(SIZES, 51200, 51200) == [
        3200,
        6400,
        12800,
        25600,
        51200,
    ]  # the default: 5 rungs
    assert RuleSettings().plan(SIZES[SIZES <= 1600], 1600, 1600, need=3) == [
        800,
        1600,
    ]  # 200 and 400: < 3 points
    assert RuleSettings(min_points=4).plan(SIZES, 400, 400) == [400]  # the budget is always run


def test_clear_losers_stop_with_a_reason_and_contenders_go_on():
    table = field_of()
    sel, decisions = schedule_round(table, 6400, table.max_size, RuleSettings(prob_threshold=0.1))
    by = {d.name: d for d in decisions}
    assert by["close0"].keep and by["close1"].keep
    assert not any(by[f"far{i}"].keep for i in range(6))
    assert by["far3"].reason.startswith("eliminated: P(best)") and "< threshold 10%" in by["far3"].reason
    assert by["close0"].prob_best + by["close1"].prob_best == pytest.approx(1.0, abs=1e-3)


def test_mass_rule_bounds_what_a_round_stops_where_each_lets_near_misses_add_up():
    rng = np.random.default_rng(1)
    offsets = [0.0, *np.linspace(0.04, 0.08, 6)]  # a leader and six near misses
    rows = [(3.0 * SIZES**-0.3 + 1.0 + o) * rng.uniform(0.998, 1.002, SIZES.size) for o in offsets]
    table = LossTable(tuple(f"c{i}" for i in range(7)), SIZES, np.array(rows), zero_shot=np.array([5.0] * 7))
    run = {
        rule: schedule_round(
            table, 6400, table.max_size, RuleSettings(prob_threshold=0.1, min_survivors=1, rule=rule)
        )[1]
        for rule in ("mass", "each")
    }
    stopped = {rule: [d for d in ds if not d.keep] for rule, ds in run.items()}
    # each: every candidate under the threshold stops, and together they hold more than it
    assert all(d.prob_best < 0.1 for d in stopped["each"]) and len(stopped["each"]) >= 2
    assert all(d.prob_best >= 0.1 for d in run["each"] if d.keep)
    assert sum(d.prob_best for d in stopped["each"]) > 0.1
    # mass: the least likely stop while their sum stays under it; the next one would cross it
    assert 0 < len(stopped["mass"]) < len(stopped["each"])
    held = sum(d.prob_best for d in stopped["mass"])
    kept = sorted(d.prob_best for d in run["mass"] if d.keep)
    assert held < 0.1 and held + kept[0] >= 0.1
    assert max(d.prob_best for d in stopped["mass"]) <= kept[0]
    assert f"the {len(stopped['mass'])} stopped this round hold" in stopped["mass"][0].reason
    with pytest.raises(ValueError, match="`rule` must be one of mass, each"):
        schedule_round(table, 6400, table.max_size, RuleSettings(rule="greedy"))


def test_guards_keep_candidates_on_too_little_evidence():
    table = field_of()
    # too few points at the rung: nobody can be eliminated there
    _, decisions = schedule_round(table, 400, table.max_size, RuleSettings(prob_threshold=0.5, min_points=3))
    assert all(d.keep for d in decisions)
    # the floor keeps the most likely ones whatever the threshold
    _, decisions = schedule_round(
        table, 6400, table.max_size, RuleSettings(prob_threshold=0.99, min_survivors=3)
    )
    assert sum(d.keep for d in decisions) == 3 and "among the top 3" in decisions[0].reason
    # a method without P(best) eliminates nobody
    _, decisions = schedule_round(table, 6400, table.max_size, method="ats")
    assert all(d.keep for d in decisions) and "no P(best)" in decisions[0].reason
    with pytest.raises(ValueError, match="prob_threshold"):
        schedule_round(table, 6400, table.max_size, RuleSettings(prob_threshold=1.5))
    with pytest.raises(
        ValueError,
        match="`min_points` must be at least 2, `min_survivors` and `rungs` at least 1",
    ):
        schedule_round(table, 6400, table.max_size, RuleSettings(min_survivors=0))
    with pytest.raises(ValueError, match="`schedule` should be 'full' or 'adaptive'"):
        evaluate(table, ["robust_ats"], [2], schedule="rounds")


def test_replay_reads_only_the_cells_it_runs_and_spends_less():
    table = field_of()
    run = simulate(table, 51200)
    assert run.selection.best in ("close0", "close1")
    assert set(run.eliminated_at) == {f"far{i}" for i in range(6)}
    full = select(table, budget=51200)
    assert run.examples < 0.4 * full.examples
    # garbage beyond where each eliminated candidate stopped changes nothing
    losses = table.losses.copy()
    for name, rung in run.eliminated_at.items():
        losses[table.names.index(name), SIZES > rung] = 0.01
    poisoned = LossTable(table.names, SIZES, losses, zero_shot=table.zero_shot)
    again = simulate(poisoned, 51200)
    assert again.selection.ranking == run.selection.ranking and again.examples == run.examples
    assert "eliminated: far" in run.describe()[0] and len(run.describe()) == len(run.rungs)


def test_evaluate_and_the_cli_score_the_adaptive_schedule(tmp_path, capsys):
    table = field_of()
    rows = evaluate(table, ["robust_ats"], [2, 4], metrics=["RelAcc", "Compute"], schedule="adaptive")
    full = evaluate(table, ["robust_ats"], [2, 4], metrics=["RelAcc", "Compute"])
    get = lambda rs, m, r: next(x.value for x in rs if x.metric == m and x.ratio == r)  # noqa: E731
    for r in (2, 4):
        assert get(rows, "RelAcc", r) == pytest.approx(get(full, "RelAcc", r))
        assert get(rows, "Compute", r) < 0.5 * get(full, "Compute", r)
    path = tmp_path / "t.csv"
    table.write_csv(path)
    assert (
        rectlaw(
            [
                "evaluate",
                str(path),
                "--methods",
                "robust_ats",
                "--ratios",
                "2",
                "--schedule",
                "adaptive",
                "--compute",
                "--threshold",
                "0.05",
                "--rule",
                "each",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "method,ratio,metric,value" and any(
        line.startswith("RobustAtS,2,Compute,") for line in out
    )
    with pytest.raises(SystemExit):  # argparse: a bad value is a usage error, exit status 2
        rectlaw(["evaluate", str(path), "--schedule", "adaptive", "--threshold", "2"])
    assert "must be a probability in [0, 1)" in capsys.readouterr().err
    assert rectlaw(["evaluate", str(path), "--schedule", "adaptive", "--rule", "greedy"]) == 2
    assert "`rule` must be one of mass, each, got 'greedy'" in capsys.readouterr().err
    assert rectlaw(["evaluate", str(path), "--rule", "each"]) == 2  # would be ignored by the full schedule
    assert "add --schedule adaptive" in capsys.readouterr().err


def test_the_cli_scores_the_default_under_the_adaptive_schedule_and_says_who_cannot_stop(tmp_path, capsys):
    path = tmp_path / "t.csv"
    field_of().write_csv(path)
    assert rectlaw(["evaluate", str(path), "--ratios", "2", "--schedule", "adaptive", "--format", "csv"]) == 0
    methods = {line.split(",")[0] for line in capsys.readouterr().out.splitlines()[1:]}
    assert methods == {"RobustAtS"}  # the rule needs P(best): the default, not every method
    args = ["evaluate", str(path), "--ratios", "2,4", "--schedule", "adaptive", "--methods", "ats,robust_ats"]
    assert rectlaw(args) == 0
    err = capsys.readouterr().err
    assert err.count("ats gives no P(best): the adaptive schedule stops none of its candidates") == 1
    assert "robust_ats gives no" not in err


def test_the_rules_old_spellings_still_work_with_a_warning():
    table = field_of()
    new = simulate(table, 51200, settings=RuleSettings(prob_threshold=0.3, rungs=4))
    with pytest.warns(
        DeprecationWarning, match=r"simulate: `count` is deprecated, use settings=RuleSettings\(rungs="
    ):
        old = simulate(table, 51200, prob_threshold=0.3, count=4)
    assert old.rungs == new.rungs and old.eliminated_at == new.eliminated_at


def test_the_sweepers_old_threshold_and_floor_still_work_with_a_warning():
    import dataclasses

    from hydra_plugins.rectlaw_sweeper.rectlaw_sweeper import RectlawSweeper
    from lightning_rectlaw.app.adaptive_sweeper import RectlawSweeperConf

    conf = {k: v for k, v in dataclasses.asdict(RectlawSweeperConf()).items() if k != "_target_"}
    with pytest.warns(
        DeprecationWarning, match=r"`threshold` is deprecated, use hydra.sweeper.prob_threshold"
    ):
        sweeper = RectlawSweeper(**{**conf, "threshold": 0.05, "floor": 3})
    assert sweeper.settings == RuleSettings(prob_threshold=0.05, min_survivors=3)
    assert RectlawSweeper(**conf).settings == RuleSettings()


def test_settings_given_as_an_unknown_keyword_and_a_compute_budget_without_costs_are_refused():
    from lightning_rectlaw.schedule.rounds import Rung, run_rounds
    from lightning_rectlaw.schedule.rule import settings_from

    with pytest.raises(TypeError, match="simulate\\(\\) got an unexpected keyword argument 'treshold'"):
        settings_from(None, {"treshold": 0.1}, "simulate")
    table = field_of()
    with pytest.raises(ValueError, match="a compute budget needs the rounds' `cost` and the `budget` rung"):
        run_rounds(
            lambda i, rung, alive: Rung(table, table.max_size),
            table.names,
            [6400.0],
            RuleSettings(compute_budget=1),
        )
