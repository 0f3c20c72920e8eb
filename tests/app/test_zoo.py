"""The local model zoo (examples/make_zoo.py) in miniature: build, load by path, ground truth."""

import subprocess
import sys
from pathlib import Path

import pytest

from lightning_rectlaw.cli import main as rectlaw
from lightning_rectlaw.core.table import LossTable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_unknown_zoo_model_is_refused_naming_the_choices(capsys):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_zoo.py"), "--models=gpt5"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "unknown zoo model(s) ['gpt5']; choose from" in proc.stderr and "control" in proc.stderr


@pytest.mark.slow
def test_miniature_zoo_end_to_end(tmp_path, capsys):
    out = tmp_path / "zoo"
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "make_zoo.py"),
        f"--out={out}",
        "--models=gpt2-s-short,control",
        "--scale=0.2",  # 30 pretraining steps
        "--truth",
        "--target=256",
        "--min-size=16",
        "--ratios=2,4",
        "--epochs=2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # the candidates load by path exactly like hub checkpoints, tokenizer included
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("gpt2-s-short", "control"):
        model = AutoModelForCausalLM.from_pretrained(out / name)
        tok = AutoTokenizer.from_pretrained(out / name)
        assert model.config.vocab_size == len(tok)

    table = LossTable.read_csv(out / "zoo_losses.csv")
    assert set(table.names) == {"gpt2-s-short", "control"}
    assert list(table.sizes) == [16, 32, 64, 128, 256]
    zero = dict(zip(table.names, table.zero_shot))
    assert zero["gpt2-s-short"] < zero["control"]  # pretraining on Python source transfers

    # the loss table round-trips through `rectlaw evaluate` with the numbers the script wrote
    capsys.readouterr()
    assert (
        rectlaw(
            [
                "evaluate",
                str(out / "zoo_losses.csv"),
                "--methods",
                "robust_ats,ats,pooled,subtuning,zeroshot",
                "--ratios",
                "2,4",
                "--compute",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    evaluated = capsys.readouterr().out.strip().splitlines()
    written = (out / "zoo_selection.csv").read_text().strip().splitlines()
    assert sorted(evaluated) == sorted(written)
    assert (out / "zoo_curves.png").stat().st_size > 1000
    assert "| RobustAtS | RelAcc |" in (out / "zoo_selection.md").read_text()

    # a second run reuses the built models and the finished fine-tuning runs
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "gpt2-s-short: cached" in again.stdout and "control: cached" in again.stdout
    assert (again.stdout + again.stderr).count(" reused, ") >= 2  # every subset of each candidate


@pytest.mark.slow
def test_code_zoo_links_both_zoos_models_under_prefixed_names(tmp_path):
    script = str(ROOT / "examples" / "make_zoo.py")
    out, std, cross = tmp_path / "code", tmp_path / "std", tmp_path / "cross"
    bad = subprocess.run(
        [sys.executable, script, "--zoo=code", f"--out={out}", f"--sources={std}"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "--sources needs 2 directories" in bad.stderr
    bad = subprocess.run(
        [sys.executable, script, "--zoo=props", f"--out={out}", f"--sources={std}"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "--sources needs 2 directories" in bad.stderr  # props links them too
    cmd = [sys.executable, script, "--zoo=code", f"--out={out}", f"--sources={std},{cross}", "--scale=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    links = sorted(p.name for p in out.iterdir() if p.is_symlink())
    assert len(links) == 14 and "std-control" in links and "x-llama-m-control" in links
    assert (out / "std-gpt2-s-long").resolve() == (std / "gpt2-s-long").resolve()
    assert (out / "x-gpt2-s-long").resolve() == (cross / "gpt2-s-long").resolve()  # same name, other zoo
    # a second run reuses the models and the links
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("cached") == 14
    # a directory of its own where a link would go is never trained in its place
    other = tmp_path / "other"
    (other / "std-control").mkdir(parents=True)
    clash = subprocess.run(
        [*cmd[:3], f"--out={other}", *cmd[4:]], capture_output=True, text=True, timeout=600
    )
    assert clash.returncode != 0 and "std-control exists and is not a link" in clash.stderr
