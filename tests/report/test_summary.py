"""The selection summary of a sweep directory: which candidate, under which name, how sure, why a
prediction has no interval, what failed; each test writes the job records a sweep would have
written (the ``write_job`` and ``hydra_job`` fixtures)."""

import csv
import json
import os
from pathlib import Path

import pytest

from lightning_rectlaw.report import NothingRankedError, collect_results, failures, write_summary

SIZES = [6400, 3200, 1600, 800, 400, 200]


def _multirun(root: Path, task: list[str]) -> None:
    (root / "multirun.yaml").write_text(json.dumps({"hydra": {"overrides": {"task": task}}}))


def _rows(root: Path) -> dict[str, dict]:
    return {r["candidate"]: r for r in csv.DictReader((root / "selection_summary.csv").open())}


def test_a_re_run_under_an_earlier_naming_is_not_ranked_against_the_latest(tmp_path, write_job):
    """A candidate's runs at budgets 512 and 1024 in two directories: one row, the latest."""
    old = write_job(
        tmp_path / "model=b,rectlaw.budget=512", "b", 1.0, overrides=["model=b", "rectlaw.budget=512"]
    )
    os.utime(old / "candidate.json", (1, 1))  # written first
    write_job(tmp_path / "model=b", "b", 0.9, overrides=["model=b", "rectlaw.budget=1024"])
    write_job(tmp_path / "model=a", "a", 1.1, overrides=["model=a", "rectlaw.budget=1024"])
    _multirun(tmp_path, ["model=a,b", "rectlaw.budget=1024"])
    write_summary(tmp_path)
    rows = _rows(tmp_path)
    assert sorted(rows) == ["a", "b"]  # not "b [rectlaw.budget=512]" and "b [rectlaw.budget=1024]"
    md = (tmp_path / "selection_summary.md").read_text()
    assert "the latest is kept: `b` (left out: model=b,rectlaw.budget=512)" in md


def test_two_settings_of_one_model_stay_two_candidates(tmp_path, write_job):
    write_job(tmp_path / "lr1", "m", 1.0, overrides=["model=m", "model.lr=1"])
    write_job(tmp_path / "lr2", "m", 0.9, overrides=["model=m", "model.lr=2"])
    _multirun(tmp_path, ["model=m", "model.lr=1,2"])
    write_summary(tmp_path)
    assert sorted(_rows(tmp_path)) == ["m [model.lr=1]", "m [model.lr=2]"]


def test_local_checkpoints_go_by_the_shortest_unique_tail_of_their_path(tmp_path, write_job):
    write_job(
        tmp_path / "j1",
        "/models/team/gpt2-local",
        1.0,
        overrides=["model.model_name_or_path=/models/team/gpt2-local"],
    )
    write_job(tmp_path / "j2", "/models/a/gpt2", 0.9, overrides=["model.model_name_or_path=/models/a/gpt2"])
    write_job(tmp_path / "j3", "/models/b/gpt2", 1.1, overrides=["model.model_name_or_path=/models/b/gpt2"])
    write_job(
        tmp_path / "j4",
        "EleutherAI/pythia-70m",
        1.2,
        overrides=["model.model_name_or_path=EleutherAI/pythia-70m"],
    )
    write_summary(tmp_path)
    rows = _rows(tmp_path)
    assert sorted(rows) == ["EleutherAI/pythia-70m", "a/gpt2", "b/gpt2", "gpt2-local"]
    assert rows["gpt2-local"]["checkpoint"] == "/models/team/gpt2-local"
    assert rows["EleutherAI/pythia-70m"]["checkpoint"] == ""  # a hub id keeps its name
    data = json.loads((tmp_path / "selection_summary.json").read_text())
    assert {r["checkpoint"] for r in data["candidates"]} >= {"/models/a/gpt2", "/models/b/gpt2"}


def test_a_prediction_without_an_interval_says_why_and_the_fix(tmp_path, write_job):
    write_job(tmp_path / "a", "a", 1.0, overrides=["model=a"], sizes=[800, 400, 200], method="robust_ats")
    write_job(tmp_path / "b", "b", 1.1, overrides=["model=b"], sizes=[800, 400, 200], method="robust_ats")
    write_summary(tmp_path)
    md = (tmp_path / "selection_summary.md").read_text()
    assert "**No interval** for `a`, `b`: with 3 subset(s) within the budget" in md
    assert "A larger `rectlaw.budget` or a smaller `rectlaw.min_size`" in md


BPE_300 = {"name": "bpe-300", "sha256": "1" * 64}
BPE_4000 = {"name": "bpe-4000", "sha256": "2" * 64}


def _scored(write_job, root: Path, scored: dict[str, tuple[str | None, dict | None]]) -> None:
    """Jobs ``a`` (the worse) and ``b``, each with its (monitor, tokenizer) as the callback records them."""
    for name, (monitor, tokenizer) in scored.items():
        d = write_job(root / name, name, {"a": 1.0, "b": 0.9}[name], overrides=[f"model={name}"])
        record = json.loads((d / "candidate.json").read_text())
        (d / "candidate.json").write_text(json.dumps({**record, "monitor": monitor, "tokenizer": tokenizer}))


def test_the_summary_shows_each_candidates_monitor_and_tokenizer(tmp_path, write_job):
    _scored(write_job, tmp_path, {"a": ("val_bpb", BPE_300), "b": ("val_bpb", BPE_4000)})
    write_summary(tmp_path)  # other tokenizers, one loss per byte: ranked
    rows = _rows(tmp_path)
    assert (rows["a"]["monitor"], rows["a"]["tokenizer"]) == ("val_bpb", "bpe-300 (11111111)")
    assert (rows["b"]["rank"], rows["b"]["tokenizer"]) == ("1", "bpe-4000 (22222222)")
    md = (tmp_path / "selection_summary.md").read_text()
    assert "| prob_best | monitor | tokenizer |" in md and "| val_bpb | bpe-300 (11111111) |" in md
    data = json.loads((tmp_path / "selection_summary.json").read_text())
    assert {r["name"]: r["tokenizer"] for r in data["results"]} == {"a": BPE_300, "b": BPE_4000}
    # records from before these keys load, with empty cells, and are ranked as before
    _scored(write_job, tmp_path / "old", {"a": (None, None), "b": (None, None)})
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
def test_candidates_without_a_loss_in_common_are_listed_but_none_is_ranked(
    tmp_path, scored, problem, write_job
):
    _scored(write_job, tmp_path, scored)
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


def test_one_tokenizer_is_ranked_on_a_per_token_loss(tmp_path, write_job):
    _scored(write_job, tmp_path, {"a": ("val_loss", BPE_300), "b": ("val_loss", BPE_300)})
    write_summary(tmp_path)
    assert _rows(tmp_path)["b"]["rank"] == "1"


def test_the_lines_a_sweep_ends_with_name_each_failed_candidate(tmp_path, write_job):
    _scored(write_job, tmp_path, {"a": ("val_bpb", BPE_300), "b": ("val_bpb", BPE_300)})
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


def test_summary_errors_name_the_files(tmp_path):
    with pytest.raises(ValueError, match="no candidate.json found"):
        collect_results(tmp_path)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "candidate.json").write_text("{not json")
    with pytest.raises(
        ValueError, match=r"(?s)corrupt result file.*job/candidate.json: Expecting property name"
    ):
        write_summary(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_results(tmp_path / "nope")
    from lightning_rectlaw.selection import loss_table

    with pytest.raises(ValueError, match="no finished candidate with measured losses"):
        loss_table([{"name": "a", "status": "failed"}])


def test_candidates_predicted_at_different_target_sizes_are_not_ranked_together(tmp_path, capsys):
    """A sweep over two datasets: the losses predicted for each are not comparable."""
    from lightning_rectlaw.cli import main

    for name, loss, target in (("a", 2.0, 800), ("b", 1.5, 800), ("c", 0.5, 3200)):
        (tmp_path / name).mkdir()
        record = {"name": name, "status": "ok", "predicted_loss": loss, "target_size": target}
        record.update(sizes=[400, 200, 100], losses=[loss + 0.2, loss + 0.4, loss + 0.7])
        (tmp_path / name / "candidate.json").write_text(json.dumps(record))
    assert main(["summarize", str(tmp_path)]) != 0
    assert "predicted at different target sizes (800: ['a', 'b']; 3200: ['c'])" in capsys.readouterr().err
    rows = list(csv.DictReader((tmp_path / "selection_summary.csv").open()))
    assert {r["candidate"] for r in rows} == {"a", "b", "c"} and not any(r["rank"] for r in rows)
    md = (tmp_path / "selection_summary.md").read_text()
    assert "**No candidate is chosen**" in md and "Fine-tune" not in md


def test_candidates_scored_on_different_validation_data_are_flagged(tmp_path):
    """Same target size, other validation batches (another tokenizer or dataset): ranked, flagged."""
    from lightning_rectlaw.report.summary import write_summary

    for name, loss, data in (("a", 2.0, "h1"), ("b", 1.5, "h1"), ("c", 0.5, "h2")):
        (tmp_path / name).mkdir()
        record = {"name": name, "status": "ok", "predicted_loss": loss, "target_size": 800}
        record.update(
            sizes=[400, 200, 100], losses=[loss + 0.2, loss + 0.4, loss + 0.7], validation_data=data
        )
        (tmp_path / name / "candidate.json").write_text(json.dumps(record))
    write_summary(tmp_path)
    md = (tmp_path / "selection_summary.md").read_text()
    assert "**Scored on different validation data** (`a`, `b`; `c`)" in md and "Fine-tune `c`" in md
    for name in "abc":  # one dataset, one tokenizer: no flag
        record = json.loads((tmp_path / name / "candidate.json").read_text())
        (tmp_path / name / "candidate.json").write_text(json.dumps({**record, "validation_data": "h1"}))
    write_summary(tmp_path)
    assert "different validation data" not in (tmp_path / "selection_summary.md").read_text()


def test_summary_reranks_pooled_candidates_jointly(tmp_path, write_job):
    """Each job saw only its own curve; the summary backtests the shared exponent on all of them."""
    for name, scale in (("a", 1.0), ("b", 0.8), ("c", 1.2)):
        write_job(tmp_path / name, name, scale, method="pooled", options={}, interval_level=0.8)
    write_summary(tmp_path)
    rows = list(csv.DictReader((tmp_path / "selection_summary.csv").open()))
    assert [r["candidate"] for r in rows] == ["b", "a", "c"]
    assert all(float(r["predicted_loss"]) < 9 for r in rows)
    assert all(
        float(r["interval_low"]) < float(r["predicted_loss"]) < float(r["interval_high"]) for r in rows
    )
    assert sum(float(r["prob_best"]) for r in rows) == pytest.approx(1.0)
    assert "Probability that `b` is the best candidate" in (tmp_path / "selection_summary.md").read_text()


def test_summary_reranks_robust_ats_jointly_and_lists_runs_left_out(tmp_path, write_job):
    sizes = [6400, 3200, 1600, 800, 400, 200, 100]
    for name, scale in (("a", 1.0), ("b", 0.9), ("c", 1.1)):  # c's run at 1600 is bad
        bad = 2 if name == "c" else None
        write_job(tmp_path / name, name, scale, sizes=sizes, method="robust_ats", bad=bad, interval_level=0.8)
    with pytest.warns(UserWarning, match="left out of the ranking as bad runs: c: 1600"):
        write_summary(tmp_path)
    rows = {r["candidate"]: r for r in csv.DictReader((tmp_path / "selection_summary.csv").open())}
    assert [n for n, r in sorted(rows.items(), key=lambda kv: int(kv[1]["rank"]))] == ["b", "a", "c"]
    assert sum(float(r["prob_best"]) for r in rows.values()) == pytest.approx(1.0)
    assert "1600: off the curve" in rows["c"]["left_out"] and rows["a"]["left_out"] == ""
    md = (tmp_path / "selection_summary.md").read_text()
    assert "**Runs left out as bad**" in md and "- `c`, 1600 examples: off the curve" in md
    # the plotted curve is the method's: each prediction is the last point of its curve
    results = json.loads((tmp_path / "selection_summary.json").read_text())["results"]
    for r in results:
        assert r["prediction_curve"]["losses"][-1] == pytest.approx(r["predicted_loss"])


def test_a_killed_job_is_listed_as_incomplete_with_what_it_measured(tmp_path, write_job, hydra_job):
    write_job(tmp_path / "a", "a", method="robust_ats", options={"k": 3})
    hydra_job(tmp_path / "a", ["model=a"])
    killed = tmp_path / "b"
    hydra_job(killed, ["model=tiny_llama"], choice="tiny_llama")
    runs = killed / "rectlaw" / "rectlaw_runs"
    runs.mkdir(parents=True)
    for size, loss in ((6400, 1.9), (3200, 2.1)):
        (runs / f"size_{size}.json").write_text(json.dumps({"key": "k", "size": size, "loss": loss}))
    write_summary(tmp_path)
    rows = {r["candidate"]: r for r in csv.DictReader((tmp_path / "selection_summary.csv").open())}
    assert set(rows) == {"a", "tiny_llama"}
    assert rows["tiny_llama"]["rank"] == "" and rows["tiny_llama"]["status"].startswith("incomplete:")
    assert "2 subset(s) measured" in rows["tiny_llama"]["status"]
    assert rows["tiny_llama"]["losses_measured"] == "6400:1.9, 3200:2.1"
    assert "incomplete" in (tmp_path / "selection_summary.md").read_text()


def test_same_candidate_name_with_different_settings_gets_two_names(tmp_path, write_job, hydra_job):
    for job, lr in (("j1", "1e-3"), ("j2", "1e-4")):
        write_job(
            tmp_path / job / "gpt2",
            "gpt2",
            1.0 if job == "j1" else 1.1,
            method="robust_ats",
            options={"k": 3},
        )
        hydra_job(tmp_path / job / "gpt2", ["model=hf", "model.model_name_or_path=gpt2", f"model.lr={lr}"])
    write_summary(tmp_path)
    names = {r["candidate"] for r in csv.DictReader((tmp_path / "selection_summary.csv").open())}
    assert names == {"gpt2 [model.lr=1e-3]", "gpt2 [model.lr=1e-4]"}


def test_a_sweep_with_nothing_ranked_still_writes_the_summary_and_fails(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "candidate.json").write_text(
            json.dumps({"name": name, "status": "failed", "error": "boom"})
        )
    from lightning_rectlaw.cli import main as rectlaw
    from lightning_rectlaw.report.summary import NothingRankedError

    with pytest.raises(NothingRankedError, match=r"no candidate of .* could be ranked \(a: failed: boom"):
        write_summary(tmp_path)
    assert (tmp_path / "selection_summary.md").exists()
    assert rectlaw(["summarize", str(tmp_path)]) == 2
    assert "could be ranked" in capsys.readouterr().err


def test_summarize_out_writes_elsewhere_and_an_unwritable_directory_names_the_fix(
    tmp_path, capsys, write_job
):
    for name, scale in (("a", 1.0), ("b", 1.1)):
        write_job(
            tmp_path / "sweep" / name,
            name,
            scale,
            sizes=[6400, 3200, 1600, 800],
            method="robust_ats",
            options={},
        )
    from lightning_rectlaw.cli import main as rectlaw

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert rectlaw(["summarize", str(tmp_path / "sweep"), "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the selection summary into" in err and "--out DIR" in err
    assert rectlaw(["summarize", str(tmp_path / "sweep"), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "selection_summary.md").exists()
    assert not (tmp_path / "sweep" / "selection_summary.md").exists()
