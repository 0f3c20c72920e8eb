"""What the selection summary tells a user: which candidate, under which name, and why a
prediction has no interval. Each test writes the job records a sweep would have written."""

import csv
import json
import os
from pathlib import Path

from lightning_rectlaw.report import write_summary

SIZES = [6400, 3200, 1600, 800, 400, 200]


def _job(
    root: Path, job: str, name: str, scale: float, overrides: list[str], sizes=SIZES, method="ats"
) -> Path:
    d = root / job
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    record = {
        "name": name,
        "status": "ok",
        "method": method,
        "options": {"k": 3, "delta": 5.0, **({"holdouts": 3} if method == "robust_ats" else {})},
        "predicted_loss": scale,
        "interval": None,
        "sizes": sizes,
        "losses": [scale * 3.0 / (5 + s**0.3) for s in sizes],
        "target_size": 102400,
    }
    (d / "candidate.json").write_text(json.dumps(record))
    return d


def _multirun(root: Path, task: list[str]) -> None:
    (root / "multirun.yaml").write_text(json.dumps({"hydra": {"overrides": {"task": task}}}))


def _rows(root: Path) -> dict[str, dict]:
    return {r["candidate"]: r for r in csv.DictReader((root / "selection_summary.csv").open())}


def test_a_re_run_under_an_earlier_naming_is_not_ranked_against_the_latest(tmp_path):
    """A candidate's runs at budgets 512 and 1024 in two directories: one row, the latest."""
    old = _job(tmp_path, "model=b,rectlaw.budget=512", "b", 1.0, ["model=b", "rectlaw.budget=512"])
    os.utime(old / "candidate.json", (1, 1))  # written first
    _job(tmp_path, "model=b", "b", 0.9, ["model=b", "rectlaw.budget=1024"])
    _job(tmp_path, "model=a", "a", 1.1, ["model=a", "rectlaw.budget=1024"])
    _multirun(tmp_path, ["model=a,b", "rectlaw.budget=1024"])
    write_summary(tmp_path)
    rows = _rows(tmp_path)
    assert sorted(rows) == ["a", "b"]  # not "b [rectlaw.budget=512]" and "b [rectlaw.budget=1024]"
    md = (tmp_path / "selection_summary.md").read_text()
    assert "the latest is kept: `b` (left out: model=b,rectlaw.budget=512)" in md


def test_two_settings_of_one_model_stay_two_candidates(tmp_path):
    _job(tmp_path, "lr1", "m", 1.0, ["model=m", "model.lr=1"])
    _job(tmp_path, "lr2", "m", 0.9, ["model=m", "model.lr=2"])
    _multirun(tmp_path, ["model=m", "model.lr=1,2"])
    write_summary(tmp_path)
    assert sorted(_rows(tmp_path)) == ["m [model.lr=1]", "m [model.lr=2]"]


def test_local_checkpoints_go_by_the_shortest_unique_tail_of_their_path(tmp_path):
    _job(tmp_path, "j1", "/models/team/gpt2-local", 1.0, ["model.model_name_or_path=/models/team/gpt2-local"])
    _job(tmp_path, "j2", "/models/a/gpt2", 0.9, ["model.model_name_or_path=/models/a/gpt2"])
    _job(tmp_path, "j3", "/models/b/gpt2", 1.1, ["model.model_name_or_path=/models/b/gpt2"])
    _job(tmp_path, "j4", "EleutherAI/pythia-70m", 1.2, ["model.model_name_or_path=EleutherAI/pythia-70m"])
    write_summary(tmp_path)
    rows = _rows(tmp_path)
    assert sorted(rows) == ["EleutherAI/pythia-70m", "a/gpt2", "b/gpt2", "gpt2-local"]
    assert rows["gpt2-local"]["checkpoint"] == "/models/team/gpt2-local"
    assert rows["EleutherAI/pythia-70m"]["checkpoint"] == ""  # a hub id keeps its name
    data = json.loads((tmp_path / "selection_summary.json").read_text())
    assert {r["checkpoint"] for r in data["candidates"]} >= {"/models/a/gpt2", "/models/b/gpt2"}


def test_a_prediction_without_an_interval_says_why_and_the_fix(tmp_path):
    _job(tmp_path, "a", "a", 1.0, ["model=a"], sizes=[800, 400, 200], method="robust_ats")
    _job(tmp_path, "b", "b", 1.1, ["model=b"], sizes=[800, 400, 200], method="robust_ats")
    write_summary(tmp_path)
    md = (tmp_path / "selection_summary.md").read_text()
    assert "**No interval** for `a`, `b`: with 3 subset(s) within the budget" in md
    assert "A larger `rectlaw.budget` or a smaller `rectlaw.min_size`" in md
