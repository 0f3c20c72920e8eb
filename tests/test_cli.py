import csv
import io
import json
import subprocess
import sys

import pytest

from lightning_rectlaw.cli import main

CSV = """config name,0,200,400,800,1600,3200,6400,size,family
a,4.0,3.00,2.90,2.75,2.55,2.30,2.05,100,X
b,5.0,3.50,3.30,3.05,2.80,2.25,2.20,200,Y
c,4.5,2.80,2.78,2.74,2.68,2.58,2.44,300,Y
"""


@pytest.fixture
def table(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(CSV)
    return p


def test_fit_json_has_parameters_and_rmse(table, capsys):
    assert main(["fit", str(table), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert {"B", "pre_learned_size", "beta", "E", "alpha", "rmse_log"} <= set(rows[0])
    assert all(r["n_points"] == 6 for r in rows)  # zero-shot excluded by default


def test_select_table_and_csv(table, capsys):
    assert main(["select", str(table), "--budget", "1/2", "--target", "6400"]) == 0
    out = capsys.readouterr().out
    assert "method=robust_ats budget=3200" in out and "interval_low" in out and "prob_best" in out
    assert main(["select", str(table), "--budget", "3200", "--method", "subtuning", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["b", "a", "c"]  # ascending loss at 3200


def test_evaluate_csv_columns(table, capsys):
    assert (
        main(
            ["evaluate", str(table), "--methods", "subtuning,zeroshot", "--ratios", "2,4", "--format", "csv"]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["method", "ratio", "metric", "value"]
    assert {r["method"] for r in rows} == {"SubTuning", "ZeroShot"}
    assert {r["ratio"] for r in rows} == {"2", "4"}


def test_methods_marks_the_default(capsys):
    assert main(["methods"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "(default)" in x]
    assert len(lines) == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["select", "{t}", "--budget", "1/100"], "smaller than the smallest subset"),
        (["select", "{t}", "--budget", "99999"], "larger than the largest subset"),
        (["evaluate", "{t}", "--target", "5000"], "size 5000 is not a column"),
        (["evaluate", "{t}", "--methods", "nope"], "unknown method"),
        (["fit", "{t}", "--law", "vanilla", "--with-zero-shot"], "needs --law rectified"),
        (["fit", "missing.csv"], "cannot read loss table"),
        (["evaluate", "{t}", "--ratios", "0"], "--ratios must be positive integers"),
        (["evaluate", "{t}", "--ratios", "2,x"], "--ratios must be comma-separated integers"),
        (["evaluate", "{t}", "--metrics", "Accuracy"], "unknown metric(s) ['Accuracy']"),
    ],
)
def test_bad_input_exits_2_with_message(table, capsys, args, match):
    assert main([a.format(t=table) for a in args]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["select", "{t}", "--budget", "1/2", "--level", "1.5"], "--level: must be a coverage in (0, 1)"),
        (["select", "{t}", "--budget", "1/2", "--level", "-1"], "--level: must be a coverage in (0, 1)"),
        (["evaluate", "{t}", "--pool-size", "0"], "--pool-size: must be a positive integer"),
        (["fit", "{t}", "--max-iter", "0"], "--max-iter: must be a positive integer"),
    ],
)
def test_bad_option_values_exit_2_naming_the_option(table, capsys, args, match):
    with pytest.raises(SystemExit) as exit_info:
        main([a.format(t=table) for a in args])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def test_evaluate_user_level_metrics_in_the_csv_layout(table, capsys):
    args = ["evaluate", str(table), "--methods", "robust_ats,subtuning", "--ratios", "2"]
    assert (
        main([*args, "--metrics", "HitRate,regret,Brier,Coverage80", "--pool-size", "2", "--format", "csv"])
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {(r["method"], r["metric"]) for r in rows} == {
        ("RobustAtS", "HitRate"),
        ("RobustAtS", "Regret"),
        ("RobustAtS", "Brier"),
        ("RobustAtS", "Coverage80"),
        ("SubTuning", "HitRate"),
        ("SubTuning", "Regret"),
    }


@pytest.mark.slow
def test_console_script_and_module_entry_point(table):
    for cmd in (["rectlaw"], [sys.executable, "-m", "lightning_rectlaw"]):
        out = subprocess.run([*cmd, "methods"], capture_output=True, text=True, check=True)
        assert "ats" in out.stdout


@pytest.mark.slow
def test_output_piped_into_a_reader_that_leaves_is_not_an_error(table):
    proc = subprocess.run(
        f"{sys.executable} -m lightning_rectlaw select {table} --budget 1/2 | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.startswith("method=robust_ats") and "Error" not in proc.stderr


def test_evaluate_on_a_small_table_without_optional_columns(tmp_path, capsys):
    """The default methods and ratios on a table with 4 sizes and neither '0' nor 'size'."""
    p = tmp_path / "small.csv"
    p.write_text("config name,200,400,800,1600\na,3,2.8,2.5,2.2\nb,2.9,2.8,2.7,2.6\nc,3.1,2.9,2.6,2.4\n")
    assert main(["evaluate", str(p)]) == 2  # the default ratios reach 1/512: named, with those that fit
    err = capsys.readouterr().err
    assert "ratio(s) [16, 32, 64, 128, 256, 512] give budgets below the smallest subset" in err
    assert "use ratios up to 8, e.g. 8" in err
    assert main(["evaluate", str(p), "--ratios", "2,4", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "small.csv has no column for: zeroshot (column '0'), modelsize (column 'size')" in err
    methods = {r["method"] for r in csv.DictReader(io.StringIO(out))}
    assert {"RobustAtS", "SubTuning"} <= methods and not {"ZeroShot", "ModelSize"} & methods
    # asked for explicitly: refused before anything is computed
    assert main(["evaluate", str(p), "--ratios", "2", "--methods", "subtuning,modelsize"]) == 2
    assert "no column for modelsize (column 'size'); leave those methods out" in capsys.readouterr().err


def test_select_exits_1_when_nothing_can_be_ranked_and_names_the_fix(table, capsys):
    assert main(["select", str(table), "--budget", "400", "--method", "ats"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no candidate could be ranked at budget 400" in err[0]
    assert "AtS needs k=3 points" in err[0] and "larger --budget" in err[0] and "200, 400, 800" in err[0]


def test_evaluate_exits_1_when_no_method_ranks_at_any_ratio(table, capsys):
    assert main(["evaluate", str(table), "--methods", "ats", "--ratios", "16,32"]) == 1
    assert "no method ranked any candidate at any budget ratio [16, 32]" in capsys.readouterr().err


def test_evaluate_takes_the_law_fits_iterations_and_the_warning_names_it(table, capsys):
    args = ["evaluate", str(table), "--methods", "vanillafit,subtuning", "--ratios", "2", "--format", "csv"]
    assert main([*args, "--max-iter", "1"]) == 0
    err = capsys.readouterr().err
    assert (
        "did not converge within 1 iterations" in err
        and "`--max-iter` on `rectlaw fit` and `rectlaw evaluate`" in err
    )
    assert (
        main(["evaluate", str(table), "--methods", "subtuning", "--max-iter", "5"]) == 2
    )  # no method takes it
    assert "no method of ['subtuning'] has the option(s) ['max_iter']" in capsys.readouterr().err


def test_fit_shows_a_parameter_pinned_at_its_bound(tmp_path, capsys):
    table = tmp_path / "flat.csv"  # a curve that falls to nothing: E goes to its floor
    table.write_text("config name,200,400,800,1600,3200\nx,2.0,1.0,0.5,0.25,0.125\n")
    assert main(["fit", str(table), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["E"] == pytest.approx(1e-8) and row["at_bound"] == "E"


def test_evaluate_with_a_compute_budget_keeps_the_csv_layout_with_compute_to_two_decimals(table, capsys):
    args = ["evaluate", str(table), "--ratios", "2", "--schedule", "adaptive", "--compute-budget", "1"]
    assert main([*args, "--compute", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["method", "ratio", "metric", "value"]
    compute = next(r["value"] for r in rows if r["metric"] == "Compute")
    assert len(compute.split(".")[1]) == 2
    assert main(["evaluate", str(table), "--compute-budget", "1"]) == 2  # needs --schedule adaptive
    assert "add --schedule adaptive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a bare 0 is no compute budget
        main([*args[:-1], "0"])
    assert exit_.value.code == 2 and "--compute-budget: must be a positive number" in capsys.readouterr().err
