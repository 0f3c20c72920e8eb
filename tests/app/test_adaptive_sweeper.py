"""`hydra/sweeper=rectlaw`: rounds through Hydra's launchers, eliminations in the summary, and a
sweep killed between rounds that resumes after the last finished one."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lightning_rectlaw.schedule.rounds import ROUNDS_FILE
from lightning_rectlaw.schedule.rule import RuleSettings, plan_rungs, training_cost

ARGS = [
    "data.block_size=16",
    "data.max_val_blocks=32",
    "rectlaw.budget=512",
    "rectlaw.min_size=32",
    "trainer.max_epochs=1",
    "+trainer.enable_progress_bar=false",
    "hydra/sweeper=rectlaw",
]


def sweep_cmd(sweep, *extra, models="tiny_gpt2,tiny_llama,small_gpt2", flags=()):
    head = [sys.executable, "-m", "lightning_rectlaw", "sweep", "-m", *flags]
    return [*head, f"model={models}", *ARGS, *extra, f"hydra.sweep.dir={sweep}"]


def _rounds(rungs):
    """launch_rounds' settings in these tests: the rule at a 10% threshold, one epoch per subset."""
    settings = RuleSettings(prob_threshold=0.1)
    return dict(
        settings=settings, method="robust_ats", options={}, budget=rungs[-1], cost=training_cost(1, 1)
    )


def test_rungs_are_planned_in_examples_and_a_fraction_needs_the_target():
    four = RuleSettings(rungs=4)
    assert plan_rungs(four, 2048, 64, None, 3) == [256, 512, 1024, 2048]
    assert plan_rungs(four, "1/8", 32, 4096, 3) == [128, 256, 512]  # 64: 2 subsets
    with pytest.raises(ValueError, match="rectlaw.target_size"):
        plan_rungs(four, "1/8", 32, None, 3)


@pytest.mark.slow
def test_the_sweeper_refuses_to_sweep_the_budget(tmp_path):
    cmd = sweep_cmd(tmp_path / "sweep", "rectlaw.budget=256,512")
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "sweeps candidates on rungs of one budget: give one rectlaw.budget" in done.stderr
    assert not list((tmp_path / "sweep").glob("*/candidate.json"))  # nothing was launched


@pytest.mark.slow
def test_adaptive_sweep_eliminates_reports_rounds_and_resumes_after_a_kill(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(
        sweep_cmd(sweep),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    rounds_file = sweep / ROUNDS_FILE
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if rounds_file.exists() and json.loads(rounds_file.read_text())["rounds"]:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # killed between rounds (or early in round 2)
    proc.wait()
    state = json.loads(rounds_file.read_text())
    assert len(state["rounds"]) == 1 and not state.get("done")
    first = state["rounds"][0]
    runs = sorted(sweep.glob("*/rectlaw/rectlaw_runs/size_*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs if int(p.stem.split("_")[1]) <= first["size"]}
    assert stamps

    done = subprocess.run(sweep_cmd(sweep), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "round 1/" not in done.stdout and "round 2/3" in done.stdout  # continued after round 1
    state = json.loads(rounds_file.read_text())
    assert state["done"] and state["rounds"][0] == first and len(state["rounds"]) == 3
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # round 1 was not rerun

    rows = {r["candidate"]: r for r in csv.DictReader((sweep / "selection_summary.csv").open())}
    assert set(rows) == {"tiny_gpt2", "tiny_llama", "small_gpt2"}
    eliminated = [n for n, r in rows.items() if r["eliminated_at"]]
    survivors = [n for n, r in rows.items() if not r["eliminated_at"]]
    assert survivors and all(rows[n]["round"] == "3" for n in survivors)
    assert all(int(rows[n]["rank"]) > max(int(rows[m]["rank"]) for m in survivors) for n in eliminated)
    md = (sweep / "selection_summary.md").read_text()
    assert "**Adaptive sweep**" in md and "of the full schedule" in md
    for n in eliminated:
        assert f"`{n}` (eliminated: P(best)" in md
    assert ("judged on short curves" in md) == bool(eliminated)  # the caveat comes with eliminations
    assert "[rectlaw] chose " in done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_adaptive_sweep_through_the_joblib_launcher_with_a_failing_candidate(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install hydra-joblib-launcher")
    mine = tmp_path / "my_conf" / "model"
    mine.mkdir(parents=True)
    (mine / "broken.yaml").write_text(
        "_target_: lightning_rectlaw.hf.model.CausalLMModule\nmodel_name_or_path: /nonexistent/model\n"
    )
    sweep = tmp_path / "sweep"
    cmd = sweep_cmd(
        sweep,
        "hydra/launcher=local_parallel",
        models="tiny_gpt2,broken,tiny_llama",
        flags=[f"--config-dir={tmp_path / 'my_conf'}"],  # the user's own config groups
    )
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]  # a candidate failed: the exit says so
    assert "P(best) is among the 2 ranked only" in done.stdout.strip().splitlines()[-1]
    state = json.loads((sweep / ROUNDS_FILE).read_text())
    assert state["done"] and len(state["rounds"]) == 3
    first = {d["name"]: d for d in state["rounds"][0]["decisions"]}
    assert not first["/nonexistent/model"]["keep"] and "nonexistent" in first["/nonexistent/model"]["reason"]
    assert all(d["name"] != "/nonexistent/model" for d in state["rounds"][1]["decisions"])
    rows = {r["candidate"]: r for r in csv.DictReader((sweep / "selection_summary.csv").open())}
    assert rows["model"]["status"].startswith("failed") and rows["tiny_llama"]["rank"]  # a path's tail
    assert rows["model"]["checkpoint"] == "/nonexistent/model"  # the rounds file keeps the full name


class _Job:
    def __init__(self, value=None, error=None):
        self._value, self._error = value, error

    @property
    def return_value(self):
        if self._error is not None:
            raise self._error
        return self._value


def _fake_launcher(curves, target, calls, crash_at=None):
    """Jobs that 'measure' each candidate's curve up to the round's budget (no training)."""
    import numpy as np

    def launch(batch, first):
        calls.append([job[0] for job in batch])
        if crash_at is not None and len(calls) == crash_at:
            raise KeyboardInterrupt("killed")  # the sweep dies in the middle of this round
        out = []
        for job in batch:
            name = job[0].split("=", 1)[1]
            budget = int(next(o for o in job if o.startswith("rectlaw.budget=")).split("=")[1])
            if name == "broken":
                out.append(_Job(error=RuntimeError("CUDA out of memory")))
                continue
            sizes = [s for s in sorted(curves[name], reverse=True) if s <= budget]
            out.append(
                _Job(
                    {
                        "name": name,
                        "status": "ok",
                        "sizes": sizes,
                        "losses": [curves[name][s] for s in sizes],
                        "target_size": target,
                        "examples_processed": int(np.sum(sizes)),
                    }
                )
            )
        return out

    return launch


def test_rounds_eliminate_record_failures_and_resume_after_the_last_finished_round(tmp_path):
    from lightning_rectlaw.app.adaptive_sweeper import launch_rounds
    from lightning_rectlaw.app.jobdir import candidate_subdir
    from lightning_rectlaw.schedule.rounds import read_rounds

    sizes = [200 * 2**i for i in range(9)]
    offsets = {"a": 0.0, "b": 0.01, "c": 0.5, "d": 0.9}
    curves = {n: {s: 3.0 * s**-0.3 + 1.0 + o for s in sizes} for n, o in offsets.items()}
    candidates = [[f"model={n}"] for n in (*offsets, "broken")]
    rungs = [6400, 12800, 25600, 51200]
    kw = dict(_rounds(rungs), subdir=candidate_subdir)

    calls = []
    with pytest.raises(KeyboardInterrupt):
        launch_rounds(_fake_launcher(curves, 409600, calls, crash_at=2), candidates, rungs, tmp_path, **kw)
    state = read_rounds(tmp_path)
    assert len(state["rounds"]) == 1 and not state.get("done")
    first = {d["name"]: d for d in state["rounds"][0]["decisions"]}
    assert not first["c"]["keep"] and not first["d"]["keep"] and "P(best)" in first["c"]["reason"]
    assert not first["model=broken"]["keep"] and "CUDA out of memory" in first["model=broken"]["reason"]
    assert first["a"]["keep"] and first["b"]["keep"]

    calls.clear()
    launch_rounds(_fake_launcher(curves, 409600, calls), candidates, rungs, tmp_path, **kw)
    assert calls == [["model=a", "model=b"]] * 3  # rounds 2-4 only, survivors only
    state = read_rounds(tmp_path)
    assert (
        state["done"]
        and len(state["rounds"]) == 4
        and state["rounds"][0]["decisions"] == list(first.values())
    )
    with pytest.raises(ValueError, match="other candidates, rungs or rule"):
        launch_rounds(_fake_launcher(curves, 409600, []), candidates[:2], rungs, tmp_path, **kw)
    with pytest.raises(ValueError, match="other candidates, rungs or rule"):  # a resumed sweep keeps its rule
        launch_rounds(
            _fake_launcher(curves, 409600, []),
            candidates,
            rungs,
            tmp_path,
            **{**kw, "settings": RuleSettings(prob_threshold=0.05)},
        )


def test_one_model_at_two_settings_is_two_candidates_and_mixed_targets_are_refused(tmp_path):
    """``model=a model.lr=1,2``: two jobs named ``a``, judged apart and reported apart."""
    import numpy as np

    from lightning_rectlaw.app.adaptive_sweeper import launch_rounds
    from lightning_rectlaw.app.jobdir import candidate_subdir
    from lightning_rectlaw.report.summary import _adaptive
    from lightning_rectlaw.schedule.rounds import read_rounds

    sizes = [200 * 2**i for i in range(9)]
    offsets = {"model=a model.lr=1": 0.0, "model=a model.lr=2": 0.9, "model=c": 0.02}
    curves = {key: {s: 3.0 * s**-0.3 + 1.0 + o for s in sizes} for key, o in offsets.items()}

    def launch(batch, first, targets=None):
        out = []
        for job in batch:
            key = " ".join(o for o in job if not o.startswith(("rectlaw.budget=", "hydra.")))
            budget = int(next(o for o in job if o.startswith("rectlaw.budget=")).split("=")[1])
            run = [s for s in sorted(sizes, reverse=True) if s <= budget]
            record = {"name": job[0].split("=")[1], "status": "ok", "sizes": run}
            record |= {"losses": [curves[key][s] for s in run], "examples_processed": int(np.sum(run))}
            out.append(_Job({**record, "target_size": (targets or {}).get(key, 409600)}))
        return out

    candidates = [key.split() for key in offsets]
    rungs = [6400, 12800, 25600]
    kw = _rounds(rungs)
    launch_rounds(launch, candidates, rungs, tmp_path, subdir=candidate_subdir, **kw)
    first = read_rounds(tmp_path)["rounds"][0]["decisions"]
    by_key = {d["candidate"]: d for d in first}
    assert not by_key["model=a model.lr=2"]["keep"] and by_key["model=a model.lr=1"]["keep"]
    assert {d["name"] for d in first} == {"a", "c"}  # shown by name, told apart by key
    # the summary's records (renamed apart by collect_results) get their own rounds
    records = [
        {
            "name": f"a [model.lr={lr}]",
            "status": "ok",
            "overrides": ["model=a", f"model.lr={lr}", "rectlaw.budget=6400"],
        }
        for lr in (1, 2)
    ]
    _adaptive(tmp_path, records)
    assert records[1]["eliminated_at"] == 6400 and records[0].get("eliminated_at") is None

    def mixed(batch, first):
        return launch(batch, first, targets={"model=c": 1000})

    with pytest.raises(ValueError, match=r"at one target size.*model=c: 1000.*sweep one dataset at a time"):
        launch_rounds(mixed, candidates, rungs, tmp_path / "mixed", subdir=candidate_subdir, **kw)


def test_full_schedule_compute_counts_each_candidates_own_epochs(tmp_path):
    from lightning_rectlaw.report.summary import _adaptive

    keep = lambda name: {"name": name, "keep": True, "reason": "kept"}  # noqa: E731
    state = {
        "candidates": [],
        "rungs": ["32", "64"],
        "rounds": [
            {
                "rung": "32",
                "size": 32,
                "decisions": [keep("a"), {"name": "b", "keep": False, "reason": "eliminated: x"}],
            },
            {"rung": "64", "size": 64, "decisions": [keep("a")]},
        ],
    }
    (tmp_path / ROUNDS_FILE).write_text(json.dumps(state))
    records = [
        {"name": "a", "status": "ok", "sizes": [64, 32, 16], "examples_processed": 2 * 112},  # 2 epochs
        {"name": "b", "status": "ok", "sizes": [32, 16], "examples_processed": 48},  # 1 epoch, stopped
    ]
    rounds = _adaptive(tmp_path, records)
    assert rounds["spent"] == 224 + 48
    # to the budget: a runs 112 examples twice, b would have run them once
    assert rounds["full"] == 2 * 112 + 112
    assert records[1]["eliminated_at"] == 32 and records[0]["round"] == 2


def test_the_summary_plot_says_where_a_stopped_candidate_stopped(tmp_path, monkeypatch):
    """Its curve ends early because the sweep stopped it, not because its runs failed."""
    from lightning_rectlaw.core.presentation import figures as plot
    from lightning_rectlaw.report.summary import write_summary

    sizes = {"a": [3200, 1600, 800, 400], "b": [3200, 1600, 800, 400], "c": [1600, 800, 400]}
    for name, run in sizes.items():
        (tmp_path / name).mkdir()
        losses = [(1.0 + 0.3 * (name == "c")) * 3.0 / (5 + s**0.3) for s in run]
        record = {"name": name, "status": "ok", "method": "robust_ats", "options": {}, "sizes": run}
        record |= {"losses": losses, "target_size": 102400, "examples_processed": sum(run)}
        (tmp_path / name / "candidate.json").write_text(json.dumps(record))
    keep = lambda n: {"name": n, "keep": True, "reason": "kept"}  # noqa: E731
    stop = {"name": "c", "keep": False, "reason": "eliminated: P(best) 0.1%"}
    rounds = [
        {"rung": "1600", "size": 1600, "decisions": [keep("a"), keep("b"), stop]},
        {"rung": "3200", "size": 3200, "decisions": [keep("a"), keep("b")]},
    ]
    (tmp_path / ROUNDS_FILE).write_text(
        json.dumps({"candidates": [], "rungs": ["1600", "3200"], "rounds": rounds})
    )
    drawn = []
    real = plot.curve_figure
    monkeypatch.setattr(
        plot, "curve_figure", lambda curves, **kw: drawn.append(list(curves)) or real(curves, **kw)
    )
    write_summary(tmp_path)
    assert sorted(drawn[0]) == ["a", "b", "c (stopped at 1600)"]


@pytest.mark.slow
def test_a_compute_budget_buys_the_survivors_larger_subsets_within_its_allowance(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "lightning_rectlaw", "sweep", "-m", "hydra/sweeper=rectlaw"]
    cmd += ["data.block_size=16", "data.max_val_blocks=32", "rectlaw.budget=128", "rectlaw.min_size=32"]
    cmd += ["trainer.max_epochs=1", "+trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(
        [*cmd, "hydra.sweeper.compute_budget=2"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((sweep / ROUNDS_FILE).read_text())
    past = [r for r in state["rounds"] if r["size"] > 128]
    assert past and state["spent"] <= state["allowance"] == 2 * 3 * (128 + 64 + 32)  # 3 demo candidates
    md = (sweep / "selection_summary.md").read_text()
    assert "of the compute budget" in md and "ran past the budget of 128" in md
    again = subprocess.run(
        [*cmd, "hydra.sweeper.compute_budget=1"], capture_output=True, text=True, timeout=600
    )
    assert again.returncode != 0 and "other candidates, rungs or rule" in again.stderr  # a resumed allowance


def test_the_sweeper_builds_its_jobs_as_the_basic_sweeper_and_refuses_intervals():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lightning_rectlaw.app.adaptive_sweeper import jobs_of

    parse = OverridesParser.create().parse_overrides
    assert jobs_of(parse(["model=a,b", "trainer.max_epochs=1", "model.lr=1,2"])) == [
        ["model=a", "trainer.max_epochs=1", "model.lr=1"],
        ["model=a", "trainer.max_epochs=1", "model.lr=2"],
        ["model=b", "trainer.max_epochs=1", "model.lr=1"],
        ["model=b", "trainer.max_epochs=1", "model.lr=2"],
    ]
    with pytest.raises(ValueError, match="sweeps lists of values, not 'model.lr=interval"):
        jobs_of(parse(["model=a,b", "model.lr=interval(0,1)"]))


@pytest.mark.parametrize(("monitor", "rounds"), [("val_loss", 1), ("val_bpb", 3)])
def test_rounds_stop_after_a_rung_whose_tokenizers_differ_on_a_per_token_loss(
    tmp_path, caplog, monitor, rounds
):
    """Other tokenizers: a per-token loss ranks the tokenizers, so nobody is judged on it and no
    further round runs (the summary then ranks none and names the fix); per byte they go on."""
    import logging

    from lightning_rectlaw.app.adaptive_sweeper import launch_rounds
    from lightning_rectlaw.app.jobdir import candidate_subdir
    from lightning_rectlaw.schedule.rounds import read_rounds

    sizes = [200 * 2**i for i in range(9)]
    curves = {n: {s: 3.0 * s**-0.3 + 1.0 + o for s in sizes} for n, o in (("a", 0.0), ("b", 0.5))}
    calls = []
    fake = _fake_launcher(curves, 409600, calls)

    def launch(batch, first):
        jobs = fake(batch, first)
        for job in jobs:
            name = job._value["name"]
            job._value |= {"monitor": monitor, "tokenizer": {"name": name, "sha256": name * 64}}
        return jobs

    kw = _rounds([6400, 12800, 25600])
    with caplog.at_level(logging.INFO, logger="lightning_rectlaw"):
        launch_rounds(
            launch, [["model=a"], ["model=b"]], [6400, 12800, 25600], tmp_path, subdir=candidate_subdir, **kw
        )
    assert len(calls) == rounds
    judged = (read_rounds(tmp_path) or {}).get("rounds") or []
    assert len(judged) == (0 if monitor == "val_loss" else 3)
    stopped = "no further round: the candidates have different tokenizers (a (aaaaaaaa): model=a; b"
    assert (stopped in caplog.text) == (monitor == "val_loss")
