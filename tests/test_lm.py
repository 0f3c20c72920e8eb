"""CausalLMModule and TextDataModule: the common case of a Hugging Face causal LM."""

import lightning as L
import numpy as np
import pytest
import torch

from lightning_rectlaw import CausalLMModule, NestedSubsetDataModule, RectifiedLawCallback, TextDataModule


def test_causal_lm_on_builtin_text(tmp_path):
    cfg = {
        "model_type": "gpt2",
        "n_layer": 1,
        "n_embd": 16,
        "n_head": 2,
        "vocab_size": 257,
        "n_positions": 32,
    }
    model = CausalLMModule(config=cfg, lr=3e-3)
    assert torch.equal(
        CausalLMModule(config=cfg).model.transformer.wte.weight, model.model.transformer.wte.weight
    )  # seeded: same initial weights
    data = TextDataModule(block_size=32, batch_size=32, max_val_blocks=32)
    law = RectifiedLawCallback(schedule="all", zero_shot=True)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[law],
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=NestedSubsetDataModule(data, budget=256, min_size=64))
    r = law.result
    assert r.zero_shot_loss == pytest.approx(np.log(257), rel=0.05)  # untrained: uniform over bytes
    assert r.losses[0] < r.losses[-1] < r.zero_shot_loss  # more data, lower loss
    assert (tmp_path / "rectlaw_result.json").exists()


def test_text_datamodule_reads_files_and_reports_bad_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("hello world " * 50)
    (tmp_path / "b.jsonl").write_text('{"text": "one doc"}\n{"text": "two docs here"}\n')
    dm = TextDataModule(files=[tmp_path / "a.txt", tmp_path / "b.jsonl"], block_size=8, val_fraction=0.3)
    dm.setup("fit")
    assert len(dm.train_set) > 0 and len(dm.val_set) > 0
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 1: expected a JSON object with a 'text'"):
        TextDataModule(files=[tmp_path / "bad.jsonl", tmp_path / "a.txt"]).setup("fit")


def test_text_datamodule_from_a_hugging_face_dataset(monkeypatch):
    """`datasets` is optional: a stand-in module checks what we pass to load_dataset and read back."""
    import sys
    import types

    calls = []

    def load_dataset(**kw):
        calls.append(kw)
        return [{"text": f"document {i} " * 20, "label": i} for i in range(10)] + [{"text": ""}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    dm = TextDataModule(hf_dataset="json", hf_data_files=["train.jsonl"], block_size=8)
    dm.setup("fit")
    assert calls == [{"path": "json", "split": "train", "data_files": ["train.jsonl"]}]
    assert len(dm.train_set) > len(dm.val_set) > 0
    with pytest.raises(ValueError, match=r"no column 'body'.*set data.text_field"):
        TextDataModule(hf_dataset="json", text_field="body").setup("fit")
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ImportError, match="pip install datasets"):
        TextDataModule(hf_dataset="imdb").setup("fit")
    with pytest.raises(ValueError, match="either `files` or `hf_dataset`"):
        TextDataModule(files=["a.txt"], hf_dataset="imdb")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: CausalLMModule(), "give exactly one of"),
        (lambda: CausalLMModule(config={"n_layer": 1}), "needs a 'model_type'"),
        (lambda: TextDataModule(val_fraction=1.0), "`val_fraction` must be in"),
        (lambda: TextDataModule(block_size=1), "`block_size` must be at least 2"),
    ],
)
def test_bad_module_options(make, match):
    with pytest.raises(ValueError, match=match):
        make()
