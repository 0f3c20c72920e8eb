"""A candidate's job directory is named by what the sweep varies, so that a re-run of the sweep
with other shared settings lands in the same directories and reuses what is provably the same."""

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lightning_rectlaw.app.job import build_callback  # noqa: F401 - registers the resolver
from lightning_rectlaw.app.jobdir import candidate_subdir
from lightning_rectlaw.report.collect import swept_keys

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "lightning_rectlaw" / "app" / "conf"


def _multirun(sweep: Path, task: list[str]) -> None:
    sweep.mkdir(parents=True, exist_ok=True)
    hydra = {"overrides": {"task": task}, "sweeper": {"params": {"model": "tiny_gpt2,tiny_llama,small_gpt2"}}}
    (sweep / "multirun.yaml").write_text(OmegaConf.to_yaml({"hydra": hydra}))


def test_the_plain_sweep_names_a_job_by_the_swept_overrides_only(tmp_path):
    from hydra import compose, initialize_config_dir

    sweep = tmp_path / "sweep"
    _multirun(sweep, ["model=tiny_gpt2,tiny_llama", "rectlaw.budget=1024", "trainer.max_epochs=1"])
    job = ["model=tiny_llama", "rectlaw.budget=1024", "trainer.max_epochs=1"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[*job, f"hydra.sweep.dir={sweep}"], return_hydra_config=True)
    assert OmegaConf.select(cfg, "hydra.sweep.subdir") == "model=tiny_llama"


def test_the_swept_keys_come_from_the_command_line_and_the_sweeper_params():
    assert swept_keys(["model=a,b", "rectlaw.budget=512", "model.lr=1,2"]) == {"model", "model.lr"}
    assert swept_keys(["rectlaw.budget=512"], {"model": "a,b"}) == {"model"}


def test_the_directory_name_is_safe_for_a_path_and_falls_back_to_every_override():
    job = ["model=hf", "model.model_name_or_path=/models/a", "trainer.max_epochs=1"]
    assert candidate_subdir(job, {"model", "model.model_name_or_path"}) == (
        "model.model_name_or_path=_models_a,model=hf"
    )
    assert candidate_subdir(["rectlaw.budget=512"], set()) == "rectlaw.budget=512"  # nothing swept


@pytest.mark.slow
def test_a_re_run_with_a_larger_budget_reuses_the_subsets_and_ranks_one_run_per_candidate(tmp_path):
    tiny = ["data.block_size=16", "data.max_val_blocks=32", "rectlaw.min_size=32", "trainer.max_epochs=1"]

    def sweep(budget: int) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "lightning_rectlaw",
            "sweep",
            "-m",
            "model=tiny_gpt2",
            *tiny,
            f"rectlaw.budget={budget}",
            "+trainer.enable_progress_bar=false",
            f"hydra.sweep.dir={tmp_path}",
        ]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)

    assert sweep(128).returncode == 0
    second = sweep(256)
    assert second.returncode == 0, second.stderr[-2000:]
    assert [p.name for p in tmp_path.glob("model=*")] == ["model=tiny_gpt2"]
    assert "3 reused" in second.stdout + second.stderr  # 128, 64, 32 from the first run
    assert "chose tiny_gpt2 of 1 ranked" in second.stdout
