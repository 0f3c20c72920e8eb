"""TextDataModule, packed text, and the causal LM it feeds: the common case of a Hugging Face causal LM."""

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
    # untrained: uniform over 257 ids, so log2(257) bits for each byte (monitor auto: val_bpb)
    assert r.zero_shot_loss == pytest.approx(np.log2(257), rel=0.05)
    assert r.losses[0] < r.losses[-1] < r.zero_shot_loss  # more data, lower loss
    assert (tmp_path / "rectlaw_result.json").exists()


def test_token_ids_that_mean_nothing_to_the_model_are_refused_before_training(tmp_path):
    """A pretrained checkpoint fed byte ids (the default data), or a tokenizer larger than the
    embedding: refused with the fix; the matching byte-level pair trains."""
    small = {"model_type": "gpt2", "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    CausalLMModule(config={**small, "vocab_size": 1000}).model.save_pretrained(tmp_path / "ckpt")

    def fit(model):
        data = TextDataModule(block_size=32, batch_size=32, max_val_blocks=8)
        trainer = L.Trainer(
            max_epochs=1, callbacks=[RectifiedLawCallback()], logger=False, enable_progress_bar=False
        )
        trainer.fit(model, datamodule=NestedSubsetDataModule(data, budget=256, min_size=64))

    with pytest.raises(ValueError, match=r"byte ids mean other tokens to it; set data.tokenizer="):
        fit(CausalLMModule(str(tmp_path / "ckpt")))
    with pytest.raises(ValueError, match=r"has 257 token ids but the model's embedding has 100"):
        fit(CausalLMModule(config={**small, "vocab_size": 100}))
    CausalLMModule(config={**small, "vocab_size": 257}).model.save_pretrained(tmp_path / "bytes")
    fit(CausalLMModule(str(tmp_path / "bytes")))  # a byte-level checkpoint: its ids are bytes


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


TINY = {"model_type": "gpt2", "n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 257, "n_positions": 32}


def test_tokenized_blocks_are_cached_by_content(tmp_path, monkeypatch):
    doc = tmp_path / "a.txt"
    doc.write_text("hello world " * 200)
    (tmp_path / "b.txt").write_text("second document " * 100)
    files = [str(doc), str(tmp_path / "b.txt")]
    first = TextDataModule(files=files, block_size=16, cache_dir=tmp_path / "cache")
    first.setup("fit")
    assert len(list((tmp_path / "cache").glob("blocks-*.pt"))) == 1
    calls = []
    monkeypatch.setattr(TextDataModule, "_encode", lambda self, docs: calls.append(docs) or torch.zeros(0))
    again = TextDataModule(files=files, block_size=16, cache_dir=tmp_path / "cache")
    again.setup("fit")
    assert calls == []  # read from the cache, not tokenized
    assert torch.equal(again.train_set.tensors[0], first.train_set.tensors[0])
    doc.write_text("hello world " * 201)  # the text changed: no reuse
    monkeypatch.undo()
    changed = TextDataModule(files=files, block_size=16, cache_dir=tmp_path / "cache")
    changed.setup("fit")
    assert len(list((tmp_path / "cache").glob("blocks-*.pt"))) == 2
    other = TextDataModule(files=files, block_size=8, cache_dir=tmp_path / "cache")  # settings too
    other.setup("fit")
    assert len(list((tmp_path / "cache").glob("blocks-*.pt"))) == 3


class PaddedDicts(L.LightningDataModule):
    """Variable-length examples padded by a collator into HF-style dict batches."""

    def __init__(self, n=256):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.rows = [
            torch.randint(0, 256, (int(torch.randint(8, 17, (1,), generator=g)),), generator=g)
            for _ in range(n + 64)
        ]
        self.batch_size = 16

    @staticmethod
    def collate(rows):
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}

    def train_dataloader(self):
        return torch.utils.data.DataLoader(
            self.rows[:-64], batch_size=16, shuffle=True, collate_fn=self.collate
        )

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.rows[-64:], batch_size=16, collate_fn=self.collate)


def test_the_callback_runs_on_hf_style_dict_batches(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    trainer = L.Trainer(
        max_epochs=1, callbacks=[law], logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(
        CausalLMModule(config=TINY), datamodule=NestedSubsetDataModule(PaddedDicts(), budget=128, min_size=32)
    )
    assert law.result.sizes == [128, 64, 32] and all(np.isfinite(law.result.losses))
