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
def test_summarize_ends_with_the_choice_and_imports_no_torch(tmp_path, write_job):
    for name, scale in (("a", 1.0), ("b", 1.1)):
        write_job(tmp_path / "sweep" / name, name, scale, method="robust_ats", options={})
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
    tmp_path, caplog, monkeypatch, capsys, write_job
):
    from lightning_rectlaw.cli import main as rectlaw

    for name, scale in (("a", 1.0), ("b", 1.1)):
        write_job(tmp_path / name, name, scale, method="robust_ats")
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
    tmp_path, caplog, monkeypatch, capsys, write_job
):
    from lightning_rectlaw.cli import main as rectlaw

    for name, scale in (("a", 1.0), ("b", 1.1)):
        write_job(
            tmp_path / name, name, scale, sizes=[6400, 3200, 1600, 800], method="robust_ats", options={}
        )
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
