"""``hydra/launcher=ray_gpus`` on a CPU machine: Ray is told it has two GPUs, each candidate job
asks for one, and every job records the devices it was given."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher is in the launchers extra")

TINY = ["data.block_size=16", "data.max_val_blocks=32", "rectlaw.min_size=32", "trainer.max_epochs=1"]
RAY = [
    "hydra/launcher=ray_gpus",
    "++hydra.launcher.ray.init.num_gpus=2",
    "++hydra.launcher.ray.init.num_cpus=2",
    "++hydra.launcher.ray.remote.num_cpus=1",
    "trainer=cpu",
    "+trainer.enable_progress_bar=false",
]


def _sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "crash.yaml").write_text("_target_: os._exit\n_args_: [3]\n")  # the worker dies
    cmd = [sys.executable, "-m", "lightning_rectlaw", "sweep", "-m", *TINY, *RAY, *overrides]
    cmd += [f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)


def _ray_processes() -> str:
    return subprocess.run(["pgrep", "-fa", "raylet|gcs_server"], capture_output=True, text=True).stdout


@pytest.mark.slow
def test_candidates_spread_over_the_gpus_and_a_crash_is_that_candidates_failure(tmp_path):
    before = _ray_processes()
    proc = _sweep(tmp_path, "model=tiny_gpt2,crash,tiny_llama", "rectlaw.budget=128")
    assert proc.returncode == 1, proc.stderr[
        -3000:
    ]  # a candidate failed: the others ranked, the exit says so
    rows = {r["candidate"]: r for r in csv.DictReader((tmp_path / "sweep" / "selection_summary.csv").open())}
    assert set(rows) == {"tiny_gpt2", "crash", "tiny_llama"}
    devices = {rows[n]["visible_devices"] for n in ("tiny_gpt2", "tiny_llama")}
    assert devices <= {"0", "1"} and len(devices) == 2  # one fake GPU each
    assert rows["crash"]["rank"] == "" and rows["crash"]["status"].startswith("failed: ")
    assert (tmp_path / "sweep" / "model=crash" / "candidate.json").exists()
    assert "chose " in proc.stdout and "P(best) is among the 2 ranked" in proc.stdout
    assert _ray_processes() == before  # Ray is shut down with the sweep


@pytest.mark.slow
def test_the_adaptive_sweeper_runs_its_rounds_through_ray(tmp_path):
    proc = _sweep(
        tmp_path,
        "hydra/sweeper=rectlaw",
        "model=tiny_gpt2,tiny_llama",
        "rectlaw.budget=256",
        "hydra.sweeper.rungs=2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert "round 1/" in console and "chose " in proc.stdout
    assert (tmp_path / "sweep" / "rectlaw_rounds.json").exists()
