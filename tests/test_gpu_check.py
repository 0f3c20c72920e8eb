"""The prepared GPU check runs its CPU parts here, so it is not broken when a GPU machine comes."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_runs_its_cpu_parts_and_writes_one_markdown_block(tmp_path):
    out = tmp_path / "gpu_check.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("### GPU check, ") and "`python benchmarks/gpu_check.py --cpu`" in text
    overhead = next(line for line in text.splitlines() if "plugin overhead, bf16-mixed:" in line)
    assert "%" in overhead and "callback" in overhead and "skipped" not in overhead
    demo = next(line for line in text.splitlines() if "demo sweep:" in line)
    assert "chose " in demo, demo
    assert "ray_gpus sweep: skipped: 0 GPU(s) here" in text
    mixed = next(line for line in text.splitlines() if "mixed SFT sweep, bf16-mixed:" in line)
    assert "chose " in mixed and "GPT-2" in mixed and "T5" in mixed and "x of Trainer.fit" in mixed, mixed


@pytest.mark.slow
def test_without_a_gpu_and_without_cpu_it_says_how_to_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "run with --cpu" in proc.stdout
