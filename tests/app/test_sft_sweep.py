"""The headline use: checkpoints saved as save_pretrained leaves them (two causal LMs with different
tokenizers and an encoder-decoder), swept by path on prompt/response files, ranked by val_bpb."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "rectlaw.budget=128",
    "rectlaw.min_size=32",
    "trainer.max_epochs=1",
    "+trainer.enable_progress_bar=false",
]


def _sweep(tmp_path, *overrides):
    cmd = [sys.executable, "-m", "lightning_rectlaw", "sweep", "-m", *SMALL, *overrides]
    cmd.append(f"hydra.sweep.dir={tmp_path / 'sweep'}")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)


def _by_path(checkpoints, sft_data, chat: bool) -> list[str]:
    paths = ",".join(str(checkpoints[n]) for n in ("gpt2_bpe300", "gpt2_bpe1000", "t5"))
    train, val = (
        (sft_data["chat_train"], sft_data["chat_val"]) if chat else (sft_data["train"], sft_data["val"])
    )
    model = ["model=hf", f"model.model_name_or_path={paths}", "model.lr=3e-3"]
    return [*model, "data=sft", f"data.files=[{train}]", f"data.val_files=[{val}]", "data.max_length=512"]


def _rows(tmp_path) -> dict[str, dict]:
    return {r["candidate"]: r for r in csv.DictReader((tmp_path / "sweep" / "selection_summary.csv").open())}


@pytest.mark.slow
@pytest.mark.parametrize("chat", [False, True], ids=["prompt_completion", "messages"])
def test_checkpoints_by_path_are_ranked_by_val_bpb_on_the_same_subsets(tmp_path, checkpoints, sft_data, chat):
    proc = _sweep(tmp_path, *_by_path(checkpoints, sft_data, chat))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(tmp_path)
    assert set(rows) == {"gpt2_bpe300", "gpt2_bpe1000", "t5"} and all(r["rank"] for r in rows.values())
    assert {r["monitor"] for r in rows.values()} == {"val_bpb"}
    assert len({r["tokenizer"] for r in rows.values()}) == 3  # three tokenizers, each named
    sizes = {tuple(p.split(":")[0] for p in r["losses_measured"].split(", ")) for r in rows.values()}
    assert sizes == {("128", "64", "32")}  # the same subsets of the same pairs for every candidate
    record = json.loads(next((tmp_path / "sweep").glob("*t5*/candidate.json")).read_text())
    assert record["monitor"] == "val_bpb" and record["tokenizer"]["sha256"]
    assert record["truncated"] == {"train_examples": 0, "train_tokens": 0, "val_examples": 0, "val_tokens": 0}


@pytest.mark.slow
def test_a_per_token_loss_over_different_tokenizers_ranks_none_and_names_val_bpb(
    tmp_path, checkpoints, sft_data
):
    proc = _sweep(tmp_path, *_by_path(checkpoints, sft_data, chat=False), "rectlaw.monitor=val_loss")
    assert proc.returncode != 0
    assert "val_bpb" in proc.stdout.strip().splitlines()[-1]
    rows = _rows(tmp_path)
    assert len(rows) == 3 and not any(r["rank"] for r in rows.values())
    assert len(list((tmp_path / "sweep").glob("*/candidate.json"))) == 3  # what each measured is kept


@pytest.mark.slow
def test_the_readme_sft_line_runs_on_the_embedded_task(tmp_path):
    """`rectlaw sweep -m data=sft`, smaller: the three demo candidates on the embedded pairs."""
    proc = _sweep(tmp_path, "data=sft", "data.max_val_examples=32")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[rectlaw] chose " in proc.stdout
    rows = _rows(tmp_path)
    assert len(rows) == 3 and {r["monitor"] for r in rows.values()} == {"val_bpb"}
    assert {r["tokenizer"].split()[0] for r in rows.values()} == {"bytes"}
