"""The Hydra app: config composition, validation, a two-candidate multirun end to end."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException

from lightning_rectlaw.app.job import build_callback
from lightning_rectlaw.report import NothingRankedError, collect_results, write_summary

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "lightning_rectlaw" / "app" / "conf"
TINY = [
    "data.block_size=16",
    "data.max_val_blocks=32",
    "rectlaw.budget=256",
    "rectlaw.min_size=32",
    "trainer.max_epochs=1",
    "+trainer.enable_progress_bar=false",
]


def _compose(overrides=()):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_default_config_composes_three_candidates_with_targets(tmp_path):
    cfg = _compose()
    assert cfg.hydra.sweeper.params.model.split(",") == ["tiny_gpt2", "tiny_llama", "small_gpt2"]
    for node in (cfg.model, cfg.data, cfg.trainer, cfg.logger, cfg.rectlaw.datamodule, cfg.rectlaw.callback):
        assert "_target_" in node
    law = build_callback(
        _compose(["rectlaw.level=0.8", "rectlaw.monitor=my_loss", "rectlaw.continue_fit=true"]), tmp_path
    )
    assert (law.level, law.monitor, law.continue_fit, law.results_dir) == (0.8, "my_loss", True, tmp_path)


def test_a_wrong_type_fails_at_composition_naming_the_key():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"(?s)rectlaw\.k.*abc"):
        _compose(["rectlaw.k=abc"])
    with pytest.raises(ConfigCompositionException, match=r"(?s)rectlaw\.zero_shot"):
        _compose(["rectlaw.zero_shot=maybe"])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("rectlaw.budget=0", r"rectlaw\.budget.*budget must be positive"),
        ("rectlaw.budget=-3", r"rectlaw\.budget.*budget must be positive"),
        (
            "rectlaw.min_size=4096",
            r"rectlaw\.budget / rectlaw\.min_size.*`min_size` \(4096\) is above the budget",
        ),
        ("rectlaw.delta=0", r"^rectlaw\.delta: `delta` must be a positive number"),
        ("rectlaw.method=best", r"^rectlaw\.method: `method` should be one of"),
        ("rectlaw.holdouts=0", r"^rectlaw\.holdouts: `holdouts` must be an integer of at least 1"),
        ("rectlaw.schedule=fast", r"(?s)`schedule` should be one of.*full_key: rectlaw\.callback"),
        ("rectlaw.level=1.5", r"(?s)`level` must be in \(0, 1\).*full_key: rectlaw\.callback"),
        (
            "rectlaw.subset_callbacks=[my_pkg.Unfreeze]",
            r"(?s)cannot import 'my_pkg\.Unfreeze'.*full_key: rectlaw\.callback",
        ),
    ],
)
def test_invalid_values_fail_fast_naming_the_key(tmp_path, override, match):
    with pytest.raises((ValueError, InstantiationException), match=match):
        build_callback(_compose([override]), tmp_path)


def test_users_own_callbacks_are_instantiated_from_the_callbacks_group():
    from hydra.utils import instantiate

    cfg = _compose(["+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor"])
    built = [instantiate(node) for node in cfg.callbacks.values()]
    assert [type(cb).__name__ for cb in built] == ["LearningRateMonitor"]


def test_a_users_callback_that_changes_training_is_shared_by_import_path(tmp_path):
    law = build_callback(
        _compose(["rectlaw.subset_callbacks=[lightning.pytorch.callbacks.ModelPruning]"]), tmp_path
    )
    from lightning.pytorch.callbacks import ModelPruning

    assert law.subset_callbacks == (ModelPruning,)


def test_hugging_face_dataset_entry_instantiates_the_text_datamodule():
    from hydra.utils import instantiate

    cfg = _compose(["data=hf_dataset", "data.hf_dataset=json", "data.hf_data_files=[train.jsonl]"])
    dm = instantiate(cfg.data)
    assert dm.hf == {"path": "json", "name": None, "split": "train", "data_files": ["train.jsonl"]}


def test_unknown_group_option_fails_before_training():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="nope"):
        _compose(["model=nope"])


def _sweep(tmp_path, models, *overrides):
    extra = tmp_path / "extra_conf" / "model"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / "broken.yaml").write_text(
        "_target_: lightning_rectlaw.hf.model.CausalLMModule\nmodel_name_or_path: /nonexistent/model\n"
    )
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "train.py"),
        "-m",
        f"model={models}",
        *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.searchpath=[file://{tmp_path / 'extra_conf'}]",
        *overrides,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)


@pytest.mark.slow
def test_multirun_ranks_candidates_reports_failure_and_resumes(tmp_path):
    proc = _sweep(tmp_path, "tiny_gpt2,broken,tiny_llama")
    assert proc.returncode == 1, proc.stderr[-3000:]  # a candidate failed: said, and the exit says so
    sweep = tmp_path / "sweep"
    # a quiet console: no Lightning banner per subset, each of our lines once, the choice, the failure
    console = proc.stdout + proc.stderr
    assert "GPU available" not in console and "`Trainer.fit` stopped" not in console
    ours = [line[line.index("[rectlaw]") :] for line in console.splitlines() if "[rectlaw]" in line]
    ours = [line for line in ours if "predicted loss" in line or "chose" in line]
    assert len(ours) == len(set(ours)) == 3  # two candidates' results, then the choice
    *_, chose, failed, last = proc.stdout.strip().splitlines()
    assert "[rectlaw] chose " in chose and "P(best)" in chose and str(sweep / "selection_summary.md") in chose
    assert "[rectlaw] model: failed: " in failed and "'/nonexistent/model' does not exist" in failed
    assert "1 of 3 candidates failed or did not finish (above): P(best) is among the 2 ranked" in last
    rows = list(csv.DictReader((sweep / "selection_summary.csv").open()))
    by_name = {r["candidate"]: r for r in rows}
    broken = "model"  # a local checkpoint goes by the shortest unique tail of its path
    assert set(by_name) == {"tiny_gpt2", "tiny_llama", broken}
    assert by_name[broken]["checkpoint"] == "/nonexistent/model" and by_name["tiny_gpt2"]["checkpoint"] == ""
    ranked = [r for r in rows if r["rank"]]
    assert [r["candidate"] for r in ranked] == sorted(
        (r["candidate"] for r in ranked), key=lambda n: float(by_name[n]["predicted_loss"])
    )
    assert by_name[broken]["rank"] == "" and by_name[broken]["status"].startswith("failed: ")
    probs = [float(r["prob_best"]) for r in ranked]  # robust_ats (the default) re-ranks jointly
    assert sum(probs) == pytest.approx(1.0, abs=1e-6) and probs[0] == max(probs)
    assert "nonexistent" in by_name[broken]["status"]
    md = (sweep / "selection_summary.md").read_text()
    assert f"Fine-tune `{ranked[0]['candidate']}`" in md
    # one dataset, one tokenizer: each job hashed the same validation batches, and nothing is flagged
    hashes = {json.loads(p.read_text()).get("validation_data") for p in sweep.glob("*tiny_*/candidate.json")}
    assert len(hashes) == 1 and None not in hashes and "different validation data" not in md
    assert (sweep / "selection_summary.png").stat().st_size > 1000
    assert list((sweep / "tb_summary").glob("events.out.tfevents*"))

    runs = sorted(sweep.glob("*model=tiny_gpt2*/rectlaw/rectlaw_runs/size_*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    assert runs
    proc = _sweep(tmp_path, "tiny_gpt2,broken,tiny_llama")  # same sweep dir: resume
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in runs} == stamps  # finished subsets not retrained
    again = {r["candidate"]: r for r in csv.DictReader((sweep / "selection_summary.csv").open())}
    assert again["tiny_gpt2"]["predicted_loss"] == by_name["tiny_gpt2"]["predicted_loss"]


@pytest.mark.slow
def test_ddp_trainer_preset_runs_one_candidate_on_two_processes(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "train.py"),
        "-m",
        "model=tiny_gpt2",
        "trainer=ddp",
        "trainer.accelerator=cpu",  # the preset's GPU settings, on CPU for the test
        "trainer.precision=32-true",
        *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = collect_results(tmp_path / "sweep")
    assert record["status"] == "ok", record.get("error")
    assert len(record["sizes"]) == 4 and record["predicted_loss"] > 0
    assert list((tmp_path / "sweep").glob("*/train_ddp_process_1.log"))  # rank 1 ran in the job dir


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


@pytest.mark.slow
def test_summary_from_result_files_via_cli(tmp_path):
    for name, loss in (("a", 2.0), ("b", 1.5)):
        d = tmp_path / name
        d.mkdir()
        (d / "candidate.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "status": "ok",
                    "predicted_loss": loss,
                    "interval": [loss - 0.1, loss + 0.1],
                    "sizes": [400, 200, 100],
                    "losses": [loss + 0.2, loss + 0.4, loss + 0.7],
                    "target_size": 800,
                    "law": None,
                    "vanilla_law": None,
                }
            )
        )
    table = tmp_path / "losses.csv"
    out = subprocess.run(
        [sys.executable, "-m", "lightning_rectlaw", "summarize", str(tmp_path), "--table", str(table)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "selection_summary.md" in out.stdout
    rows = list(csv.DictReader((tmp_path / "selection_summary.csv").open()))
    assert [r["candidate"] for r in rows] == ["b", "a"]
    from lightning_rectlaw.core.table import LossTable

    losses = LossTable.read_csv(table)  # the sweep as a loss table in the paper's format
    assert losses.names == ("a", "b") and list(losses.sizes) == [100, 200, 400]
    assert losses.column(400).tolist() == pytest.approx([2.2, 1.7])


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


def _job_records(root, method, sizes, scales, options=None, bad=None):
    """One candidate.json per (name, scale): the curve ``scale * 3 / (5 + D^0.3)``, as a job
    would write it; ``bad`` = (name, index) multiplies that one loss by 1.3."""
    for name, scale in scales:
        d = root / name
        d.mkdir(parents=True)
        losses = [scale * 3.0 / (5 + s**0.3) for s in sizes]
        if bad is not None and bad[0] == name:
            losses[bad[1]] *= 1.3
        record = {
            "name": name,
            "status": "ok",
            "method": method,
            "options": options or {},
            "predicted_loss": 9.9,  # per-job predictions, replaced by the joint ones
            "interval": None,
            "interval_level": 0.8,
            "sizes": sizes,
            "losses": losses,
            "target_size": 102400,
        }
        (d / "candidate.json").write_text(json.dumps(record))


def test_summary_reranks_pooled_candidates_jointly(tmp_path):
    """Each job saw only its own curve; the summary backtests the shared exponent on all of them."""
    _job_records(tmp_path, "pooled", [6400, 3200, 1600, 800, 400, 200], (("a", 1.0), ("b", 0.8), ("c", 1.2)))
    write_summary(tmp_path)
    rows = list(csv.DictReader((tmp_path / "selection_summary.csv").open()))
    assert [r["candidate"] for r in rows] == ["b", "a", "c"]
    assert all(float(r["predicted_loss"]) < 9 for r in rows)
    assert all(
        float(r["interval_low"]) < float(r["predicted_loss"]) < float(r["interval_high"]) for r in rows
    )
    assert sum(float(r["prob_best"]) for r in rows) == pytest.approx(1.0)
    assert "Probability that `b` is the best candidate" in (tmp_path / "selection_summary.md").read_text()


def test_summary_reranks_robust_ats_jointly_and_lists_runs_left_out(tmp_path):
    sizes = [6400, 3200, 1600, 800, 400, 200, 100]
    options = {"k": 3, "delta": 5.0, "holdouts": 3}
    scales = (("a", 1.0), ("b", 0.9), ("c", 1.1))
    _job_records(tmp_path, "robust_ats", sizes, scales, options, bad=("c", 2))  # c's run at 1600
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher", "plugin"),
    [
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher"),
        ("local_parallel", "hydra_plugins.hydra_joblib_launcher"),
    ],
)
def test_sweep_runs_on_existing_launchers(tmp_path, launcher, plugin):
    pytest.importorskip(plugin, reason=f"{plugin} not installed (pip install -e '.[launchers]')")
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "train.py"),
        "-m",
        "model=tiny_gpt2,tiny_llama",
        f"hydra/launcher={launcher}",
        *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    if launcher == "local_parallel":  # jobs side by side: a named line per subset, no bar drawn
        cmd.insert(-1, "trainer.enable_progress_bar=true")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "sweep" / "selection_summary.csv").open()))
    assert sorted(r["candidate"] for r in rows if r["rank"]) == ["tiny_gpt2", "tiny_llama"]
    if launcher == "local_parallel":
        console = proc.stdout + proc.stderr
        assert "━" not in console and "ex/s" not in console  # neither a Rich nor a tqdm bar
        for name in ("tiny_gpt2", "tiny_llama"):
            assert f"[rectlaw] {name} subset 1/" in console


def test_jobs_side_by_side_in_one_terminal_log_lines_instead_of_bars():
    from types import SimpleNamespace

    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from lightning_rectlaw.app.sweep import side_by_side

    def hc(mode, **launcher):
        return SimpleNamespace(mode=mode, launcher=OmegaConf.create(launcher))

    assert side_by_side(hc(RunMode.MULTIRUN, _target_="...JoblibLauncher", n_jobs=3))
    assert side_by_side(hc(RunMode.MULTIRUN, _target_="...JoblibLauncher", n_jobs=-1))  # every core
    assert not side_by_side(hc(RunMode.MULTIRUN, _target_="...JoblibLauncher", n_jobs=1))
    assert not side_by_side(hc(RunMode.MULTIRUN, _target_="...BasicLauncher"))  # one job at a time
    assert side_by_side(hc(RunMode.MULTIRUN, _target_="...RayGpusLauncher"))  # workers print to the driver
    assert not side_by_side(hc(RunMode.MULTIRUN, _target_="...SlurmLauncher", timeout_min=60))  # log files
    assert not side_by_side(hc(RunMode.RUN, _target_="...JoblibLauncher", n_jobs=3))
    law = build_callback(_compose(), "unused", progress="lines")  # what the app passes then
    assert law.progress == "lines"
    assert build_callback(_compose(["rectlaw.progress=lines"]), "unused").progress == "lines"
    with pytest.raises(InstantiationException, match="`progress` must be one of"):
        build_callback(_compose(["rectlaw.progress=bars"]), "unused")


def _hydra_job(job_dir, overrides, model_name=None, choice="tiny_gpt2"):
    """The .hydra/ files Hydra writes when a job starts."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    model = {"model_name_or_path": model_name} if model_name else {"_target_": "x"}
    (job_dir / ".hydra" / "config.yaml").write_text(json.dumps({"model": model}))
    (job_dir / ".hydra" / "hydra.yaml").write_text(
        json.dumps({"hydra": {"runtime": {"choices": {"model": choice}}}})
    )


def test_a_killed_job_is_listed_as_incomplete_with_what_it_measured(tmp_path):
    _job_records(tmp_path, "robust_ats", [6400, 3200, 1600, 800, 400, 200], (("a", 1.0),), {"k": 3})
    _hydra_job(tmp_path / "a", ["model=a"])
    killed = tmp_path / "b"
    _hydra_job(killed, ["model=tiny_llama"], choice="tiny_llama")
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


def test_same_candidate_name_with_different_settings_gets_two_names(tmp_path):
    sizes = [6400, 3200, 1600, 800, 400, 200]
    for job, lr in (("j1", "1e-3"), ("j2", "1e-4")):
        _job_records(tmp_path / job, "robust_ats", sizes, (("gpt2", 1.0 if job == "j1" else 1.1),), {"k": 3})
        _hydra_job(tmp_path / job / "gpt2", ["model=hf", "model.model_name_or_path=gpt2", f"model.lr={lr}"])
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


def test_summarize_out_writes_elsewhere_and_an_unwritable_directory_names_the_fix(tmp_path, capsys):
    _job_records(tmp_path / "sweep", "robust_ats", [6400, 3200, 1600, 800], (("a", 1.0), ("b", 1.1)))
    from lightning_rectlaw.cli import main as rectlaw

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert rectlaw(["summarize", str(tmp_path / "sweep"), "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the selection summary into" in err and "--out DIR" in err
    assert rectlaw(["summarize", str(tmp_path / "sweep"), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "selection_summary.md").exists()
    assert not (tmp_path / "sweep" / "selection_summary.md").exists()


def test_a_missing_model_path_says_the_path_does_not_exist():
    from lightning_rectlaw.hf.model import CausalLMModule

    with pytest.raises(FileNotFoundError, match="model path '/nonexistent/model' does not exist"):
        CausalLMModule("/nonexistent/model")


@pytest.mark.slow
def test_a_single_failed_run_and_a_sweep_with_nothing_ranked_exit_non_zero(tmp_path):
    base = [
        sys.executable,
        str(ROOT / "examples" / "train.py"),
        "model=hf",
        "model.model_name_or_path=/nonexistent/m",
    ]
    single = subprocess.run(
        [*base, f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=tmp_path
    )
    assert single.returncode == 1
    assert "does not exist" in json.loads((tmp_path / "run" / "candidate.json").read_text())["error"]
    sweep = subprocess.run(
        [base[0], base[1], "-m", *base[2:], f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert sweep.returncode == 1 and "could be ranked" in sweep.stderr + sweep.stdout
    assert (tmp_path / "sweep" / "selection_summary.md").exists()


@pytest.mark.slow
def test_summarize_ends_with_the_choice_and_imports_no_torch(tmp_path):
    _job_records(
        tmp_path / "sweep", "robust_ats", [6400, 3200, 1600, 800, 400, 200], (("a", 1.0), ("b", 1.1))
    )
    code = (
        "import sys; from lightning_rectlaw.cli import main; rc = main(['summarize', sys.argv[1]]); "
        "assert 'torch' not in sys.modules, 'summarize imported torch'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "sweep")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("[rectlaw] chose a of 2 ranked: predicted loss ")
    assert "P(best)" in last and last.endswith(str(tmp_path / "sweep" / "selection_summary.md"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "sweep" / "tb_summary"), size_guidance={"images": 0})
    ea.Reload()
    assert ea.Tags()["images"] == ["rectlaw/selection"]
    assert "rectlaw/selection_summary" in ea.Tags()["tensors"]


@pytest.mark.slow
def test_the_packaged_app_runs_from_an_installed_wheel(tmp_path):
    """`pip install lightning-rectlaw` has the sweep app: configs inside the package, `rectlaw sweep`."""
    import os
    import zipfile

    dist, site = tmp_path / "dist", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("lightning_rectlaw-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lightning_rectlaw/app/conf/config.yaml" in names and "lightning_rectlaw/py.typed" in names
    assert "lightning_rectlaw/app/conf/model/tiny_gpt2.yaml" in names
    assert "hydra_plugins/rectlaw_sweeper/rectlaw_sweeper.py" in names  # hydra/sweeper=rectlaw
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site)}  # the wheel's copy shadows the checkout's
    where = subprocess.run(
        [sys.executable, "-c", "import lightning_rectlaw; print(lightning_rectlaw.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "lightning_rectlaw", "sweep", "-m", "model=tiny_gpt2,tiny_llama", *TINY]
    proc = subprocess.run(
        [*cmd, f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[rectlaw] chose " in proc.stdout.strip().splitlines()[-1]
    rows = list(csv.DictReader((sweep / "selection_summary.csv").open()))
    assert {r["candidate"] for r in rows} == {"tiny_gpt2", "tiny_llama"}


@pytest.mark.slow
def test_a_bad_value_stops_the_sweep_before_any_job_naming_the_key(tmp_path):
    proc = _sweep(tmp_path, "tiny_gpt2,tiny_llama", "rectlaw.method=atss")
    assert proc.returncode != 0
    assert "error: rectlaw.method: `method` should be one of" in proc.stderr and "got 'atss'" in proc.stderr
    assert not list((tmp_path / "sweep").glob("model=*"))  # no job was launched


def test_a_job_whose_values_are_bad_writes_its_failure_and_the_summary_says_so(tmp_path):
    """A value swept on the command line (rectlaw.budget=512,0) is checked by each job: the bad
    one writes candidate.json with the error instead of nothing, so it is not called killed."""
    from lightning_rectlaw.app.job import run_candidate

    job = tmp_path / "sweep" / "rectlaw.budget=0"
    record = run_candidate(_compose(["rectlaw.budget=0"]), job, "tiny_gpt2")
    assert record["status"] == "failed" and "rectlaw.budget" in record["error"]
    written = json.loads((job / "candidate.json").read_text())
    assert written["error"] == record["error"]
    (row,) = collect_results(tmp_path / "sweep")
    assert row["status"] == "failed" and "killed" not in json.dumps(row)
    with pytest.raises(NothingRankedError, match=r"tiny_gpt2: failed: ValueError: rectlaw.budget / rectlaw"):
        write_summary(tmp_path / "sweep")


def test_the_app_monitors_val_bpb_where_the_module_logs_it_by_default(tmp_path):
    assert build_callback(_compose(), tmp_path).monitor == "auto"
    assert build_callback(_compose(["rectlaw.monitor=val_loss"]), tmp_path).monitor == "val_loss"


def _end_sweep(sweep_dir, caplog, monkeypatch) -> tuple[int, list[str]]:
    """What the sweep's end does to its directory: the exit status it leaves and its console lines."""
    import logging

    from omegaconf import OmegaConf

    from lightning_rectlaw.app import job
    from lightning_rectlaw.app.hooks import SelectionSummaryCallback

    monkeypatch.setitem(job._EXIT, "code", 0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lightning_rectlaw"):
        SelectionSummaryCallback().on_multirun_end(
            OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
        )
    return job.exit_code(), [r.getMessage() for r in caplog.records]


def test_a_sweep_with_a_failed_candidate_ranks_the_others_names_it_and_exits_non_zero(
    tmp_path, caplog, monkeypatch, capsys
):
    from lightning_rectlaw.cli import main as rectlaw

    sizes = [6400, 3200, 1600, 800, 400, 200]
    _job_records(
        tmp_path, "robust_ats", sizes, (("a", 1.0), ("b", 1.1)), {"k": 3, "delta": 5.0, "holdouts": 3}
    )
    (tmp_path / "broken").mkdir()
    error = "FileNotFoundError: model path '/m' does not exist\n  (a second line)"
    (tmp_path / "broken" / "candidate.json").write_text(
        json.dumps({"name": "broken", "status": "failed", "error": error})
    )
    code, lines = _end_sweep(tmp_path, caplog, monkeypatch)
    assert code == 1
    rows = {r["candidate"]: r for r in csv.DictReader((tmp_path / "selection_summary.csv").open())}
    assert rows["a"]["rank"] == "1" and rows["b"]["rank"] == "2" and rows["broken"]["rank"] == ""
    *_, chose, failed, last = lines
    assert chose.startswith("[rectlaw] chose a of 2 ranked")
    assert (
        failed
        == "[rectlaw] broken: failed: FileNotFoundError: model path '/m' does not exist (a second line)"
    )
    assert "P(best) is among the 2 ranked only" in last
    assert rectlaw(["summarize", str(tmp_path)]) == 1  # re-created, it ends the same way
    assert capsys.readouterr().out.strip().splitlines()[-2:] == [failed, last]
    (tmp_path / "broken" / "candidate.json").unlink()
    assert _end_sweep(tmp_path, caplog, monkeypatch)[0] == 0  # every candidate ranked


def test_a_sweep_of_other_tokenizers_on_a_per_token_loss_ranks_none_and_ends_naming_val_bpb(
    tmp_path, caplog, monkeypatch, capsys
):
    from lightning_rectlaw.cli import main as rectlaw

    _job_records(tmp_path, "robust_ats", [6400, 3200, 1600, 800], (("a", 1.0), ("b", 1.1)))
    for name, sha in (("a", "1" * 64), ("b", "2" * 64)):
        record = json.loads((tmp_path / name / "candidate.json").read_text())
        record.update(monitor="val_loss", tokenizer={"name": f"bpe-{name}", "sha256": sha})
        (tmp_path / name / "candidate.json").write_text(json.dumps(record))
    code, lines = _end_sweep(tmp_path, caplog, monkeypatch)
    assert code == 1 and "rectlaw.monitor=val_bpb" in lines[-1]
    assert "different tokenizers (bpe-a (11111111): a; bpe-b (22222222): b)" in lines[-2]
    rows = list(csv.DictReader((tmp_path / "selection_summary.csv").open()))
    assert {r["candidate"] for r in rows} == {"a", "b"} and not any(r["rank"] for r in rows)
    assert (tmp_path / "a" / "candidate.json").exists() and (tmp_path / "b" / "candidate.json").exists()
    assert rectlaw(["summarize", str(tmp_path)]) != 0
    assert "rectlaw.monitor=val_bpb" in capsys.readouterr().err.strip().splitlines()[-1]
