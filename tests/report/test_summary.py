"""What the selection summary tells a user: which candidate, under which name, and why a
prediction has no interval. Each test writes the job records a sweep would have written."""

import csv
import json
import os
from pathlib import Path

import pytest

from lightning_rectlaw.report import NothingRankedError, failures, write_summary

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


BPE_300 = {"name": "bpe-300", "sha256": "1" * 64}
BPE_4000 = {"name": "bpe-4000", "sha256": "2" * 64}


def _scored(root: Path, scored: dict[str, tuple[str | None, dict | None]]) -> None:
    """Jobs ``a`` (the worse) and ``b``, each with its (monitor, tokenizer) as the callback records them."""
    for name, (monitor, tokenizer) in scored.items():
        d = _job(root, name, name, {"a": 1.0, "b": 0.9}[name], [f"model={name}"])
        record = json.loads((d / "candidate.json").read_text())
        (d / "candidate.json").write_text(json.dumps({**record, "monitor": monitor, "tokenizer": tokenizer}))


def test_the_summary_shows_each_candidates_monitor_and_tokenizer(tmp_path):
    _scored(tmp_path, {"a": ("val_bpb", BPE_300), "b": ("val_bpb", BPE_4000)})
    write_summary(tmp_path)  # other tokenizers, one loss per byte: ranked
    rows = _rows(tmp_path)
    assert (rows["a"]["monitor"], rows["a"]["tokenizer"]) == ("val_bpb", "bpe-300 (11111111)")
    assert (rows["b"]["rank"], rows["b"]["tokenizer"]) == ("1", "bpe-4000 (22222222)")
    md = (tmp_path / "selection_summary.md").read_text()
    assert "| prob_best | monitor | tokenizer |" in md and "| val_bpb | bpe-300 (11111111) |" in md
    data = json.loads((tmp_path / "selection_summary.json").read_text())
    assert {r["name"]: r["tokenizer"] for r in data["results"]} == {"a": BPE_300, "b": BPE_4000}
    # records from before these keys load, with empty cells, and are ranked as before
    _scored(tmp_path / "old", {"a": (None, None), "b": (None, None)})
    write_summary(tmp_path / "old")
    old = _rows(tmp_path / "old")
    assert old["b"]["rank"] == "1" and old["a"]["monitor"] == old["a"]["tokenizer"] == ""


@pytest.mark.parametrize(
    ("scored", "problem"),
    [
        (
            {"a": ("val_loss", BPE_300), "b": ("val_loss", BPE_4000)},
            "have different tokenizers (bpe-300 (11111111): a; bpe-4000 (22222222): b) and were "
            "scored on val_loss, not on bits per byte",
        ),
        (
            {"a": ("val_bpb", BPE_300), "b": ("val_loss", BPE_300)},
            "were scored on different metrics (val_bpb: a; val_loss: b)",
        ),
    ],
)
def test_candidates_without_a_loss_in_common_are_listed_but_none_is_ranked(tmp_path, scored, problem):
    _scored(tmp_path, scored)
    with pytest.raises(NothingRankedError) as refused:
        write_summary(tmp_path)
    *what, fix = str(refused.value).splitlines()
    assert problem in what[-1] and str(tmp_path / "selection_summary.md") in what[-1]
    assert "rectlaw.monitor=val_bpb" in fix
    rows = _rows(tmp_path)
    assert sorted(rows) == ["a", "b"] and not any(r["rank"] or r["prob_best"] for r in rows.values())
    assert all(r["losses_measured"] for r in rows.values())  # what each measured is kept
    md = (tmp_path / "selection_summary.md").read_text()
    assert f"**No candidate is chosen**: the candidates {problem.split(' (')[0]}" in md
    assert "Fine-tune" not in md and "rectlaw.monitor=val_bpb" in md
    assert (tmp_path / "a" / "candidate.json").exists()


def test_one_tokenizer_is_ranked_on_a_per_token_loss(tmp_path):
    _scored(tmp_path, {"a": ("val_loss", BPE_300), "b": ("val_loss", BPE_300)})
    write_summary(tmp_path)
    assert _rows(tmp_path)["b"]["rank"] == "1"


def test_the_lines_a_sweep_ends_with_name_each_failed_candidate(tmp_path):
    _scored(tmp_path, {"a": ("val_bpb", BPE_300), "b": ("val_bpb", BPE_300)})
    (tmp_path / "c").mkdir()
    error = "InstantiationException: Error in call to target 'my.Model':\nFileNotFoundError('/m')\n"
    error += "full_key: model"
    record = {"name": "c", "status": "failed", "error": error}
    (tmp_path / "c" / "candidate.json").write_text(json.dumps(record))
    paths = write_summary(tmp_path)
    assert _rows(tmp_path)["b"]["rank"] == "1"  # the others are ranked
    *named, last = failures(paths[0])
    assert named == [  # on one line: the wrapped cause is on the error's second
        "c: failed: InstantiationException: Error in call to target 'my.Model': FileNotFoundError('/m') "
        "full_key: model"
    ]
    assert last.startswith("1 of 3 candidates failed or did not finish (above): P(best) is among the 2")
    (tmp_path / "c" / "candidate.json").unlink()
    assert failures(write_summary(tmp_path)[0]) == []
