"""SFTDataModule with LMModule in a user's own Trainer: val_bpb, the same pairs for every
tokenizer, encoder-decoders, and bad input refused before any training."""

import json
import math

import lightning as L
import pytest
import torch
from checkpoints import UNMARKED_TEMPLATE, bpe_tokenizer, save_gpt2
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from lightning_rectlaw import LMModule, NestedSubsetDataModule, RectifiedLawCallback, SFTDataModule
from lightning_rectlaw.hf.batching import LengthGroupedBatchSampler


class CountBatches(L.Callback):
    def __init__(self):
        self.batches, self.modes = 0, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches += 1
        self.modes.append(pl_module.model.training)


def _trainer(tmp_path, *callbacks, **kw):
    return L.Trainer(
        max_epochs=1,
        callbacks=list(callbacks),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **kw,
    )


def _reference_bpb(path, val_file) -> float:
    """val_bpb by hand: each pair alone, unpadded, through the checkpoint's own classes."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    nll, n_bytes = 0.0, 0
    for line in val_file.read_text().splitlines():
        row = json.loads(line)
        if "messages" in row:
            (user, assistant) = row["messages"]
            prompt, response = f"user: {user['content']}\nassistant: ", assistant["content"]
        else:
            prompt, response = row["prompt"], row["completion"]
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([p + r])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
        nll -= logp[torch.arange(len(p) - 1, ids.size(1) - 1), ids[0, len(p) :]].sum().item()
        n_bytes += len(response.encode("utf-8"))
    return nll / (n_bytes * math.log(2))


@pytest.mark.parametrize("chat", [False, True], ids=["prompt_completion", "messages"])
def test_zero_shot_val_bpb_equals_the_loss_computed_by_hand(tmp_path, checkpoints, sft_data, chat):
    path = str(checkpoints["gpt2_bpe300"])
    train, val = (
        (sft_data["chat_train"], sft_data["chat_val"]) if chat else (sft_data["train"], sft_data["val"])
    )
    law = RectifiedLawCallback(monitor="val_bpb", zero_shot=True, schedule="all")
    dm = SFTDataModule([train], val_files=[val], max_length=512, batch_size=8)
    _trainer(tmp_path, law).fit(LMModule(path), datamodule=NestedSubsetDataModule(dm, budget=64, min_size=16))
    assert law.result.zero_shot_loss == pytest.approx(_reference_bpb(path, val), abs=1e-4)
    assert dm.tokenizer_info["name"] == path  # the model's own tokenizer, by default


def test_every_candidate_sees_the_same_pairs_whatever_its_tokenizer(tmp_path, checkpoints, sft_data):
    wrapped = {}
    for name in ("gpt2_bpe300", "gpt2_bpe1000", "t5"):
        dm = SFTDataModule([sft_data["train"]], val_files=[sft_data["val"]], tokenizer=str(checkpoints[name]))
        dm.encoder_decoder = name == "t5"
        wrapped[name] = NestedSubsetDataModule(dm, budget="1/4", min_size=16)
        wrapped[name].setup("fit")
    sizes = {n: (w.full_size, w.sizes, w.indices(75).tolist()) for n, w in wrapped.items()}
    assert len({json.dumps(s) for s in sizes.values()}) == 1 and sizes["t5"][0] == 300  # D counts pairs
    w = wrapped["gpt2_bpe1000"]
    w.use_subset(75)
    loader = w.train_dataloader()
    assert isinstance(loader.batch_sampler, LengthGroupedBatchSampler)  # the grouping survives subsets
    served = sorted(int(b) for batch in loader for b in batch["num_bytes"])
    chosen = w.indices(75).tolist()
    assert served == sorted(w.datamodule.train_set[i].num_bytes for i in chosen)


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_an_encoder_decoder_checkpoint_fine_tunes_as_one(tmp_path, checkpoints, sft_data, name):
    path = checkpoints[name]
    model = LMModule(str(path), lr=1e-2)
    saved = AutoModelForSeq2SeqLM.from_pretrained(path).state_dict()
    loaded = model.model.state_dict()
    assert model.is_encoder_decoder and all(torch.equal(loaded[k], v) for k, v in saved.items())
    encoder_before = {k: v.clone() for k, v in model.model.get_encoder().state_dict().items()}
    count = CountBatches()
    dm = SFTDataModule([sft_data["train"]], val_files=[sft_data["val"]], batch_size=16)
    _trainer(tmp_path, count, max_steps=3).fit(model, datamodule=dm)
    assert count.batches == 3 and all(count.modes)  # loaded by path, trained in train mode
    after = model.model.get_encoder().state_dict()
    assert any(not torch.equal(after[k], v) for k, v in encoder_before.items())
    assert dm.encoder_decoder is True and dm.tokenizer_info["name"] == str(path)


def test_a_causal_checkpoint_trains_in_train_mode_and_caches_its_examples(tmp_path, checkpoints, sft_data):
    count = CountBatches()
    dm = SFTDataModule([sft_data["train"]], val_files=[sft_data["val"]], cache_dir=tmp_path / "cache")
    model = LMModule(str(checkpoints["gpt2_bpe300"]))
    _trainer(tmp_path, count, max_steps=2).fit(model, datamodule=dm)
    assert all(count.modes) and len(list((tmp_path / "cache").glob("sft-*.pt"))) == 1
    again = SFTDataModule([sft_data["train"]], val_files=[sft_data["val"]], cache_dir=tmp_path / "cache")
    again.tokenizer_name, again.encoder_decoder = str(checkpoints["gpt2_bpe300"]), False
    again.setup("fit")
    assert [e.input_ids for e in again.train_set.examples] == [e.input_ids for e in dm.train_set.examples]
    long_prompts = tmp_path / "long.jsonl"
    long_prompts.write_text(
        "".join(json.dumps({"prompt": "word " * 50, "completion": f"{i}"}) + "\n" for i in range(9))
    )
    shorter = SFTDataModule([long_prompts], cache_dir=tmp_path / "cache", max_length=20)
    shorter.tokenizer_name, shorter.encoder_decoder = again.tokenizer_name, False
    shorter.setup("fit")  # other records and max_length: encoded anew, truncation recorded
    assert len(list((tmp_path / "cache").glob("sft-*.pt"))) == 2
    assert shorter.truncated["train_examples"] == 8 and shorter.truncated["val_examples"] == 1
    assert all(len(e.input_ids) == 20 for e in shorter.train_set.examples)


def _bad_inputs(tmp_path, checkpoints, sft_data):
    """(what a user gives, the one line that must refuse it)."""
    good = sft_data["train"]
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n')
    (tmp_path / "empty.jsonl").write_text("")
    no_eos = tmp_path / "no_eos"
    save_gpt2(no_eos, 300)
    bare = bpe_tokenizer(300, [])
    bare.save_pretrained(no_eos)  # its tokenizer has no end token
    unmarked = tmp_path / "unmarked"
    save_gpt2(unmarked, 300, template=UNMARKED_TEMPLATE)
    from transformers import AutoConfig, BertForMaskedLM

    bert = tmp_path / "bert"
    cfg = AutoConfig.for_model(
        "bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertForMaskedLM(cfg).save_pretrained(bert)
    gpt2 = str(checkpoints["gpt2_bpe300"])
    return {
        "no response": (gpt2, dict(files=[missing]), r"missing.jsonl, line 2: no 'completion'"),
        "unknown format": (gpt2, dict(files=[good], format="sharegpt"), r"`format` should be one of"),
        "empty file": (gpt2, dict(files=[tmp_path / "empty.jsonl"]), r"empty.jsonl: no records"),
        "response too long": (
            gpt2,
            dict(files=[good], max_length=8),
            r"line \d+: the response is longer than max_length=8",
        ),
        "no end token": (str(no_eos), dict(files=[good]), r"has no end-of-sequence token"),
        "unmarked template": (
            str(unmarked),
            dict(files=[sft_data["chat_train"]]),
            r"marks no assistant token",
        ),
        "unloadable model": (str(bert), dict(files=[good]), r"was saved as \['BertForMaskedLM'\]"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no response",
        "unknown format",
        "empty file",
        "response too long",
        "no end token",
        "unmarked template",
        "unloadable model",
    ],
)
def test_bad_input_fails_before_any_training_with_one_line(tmp_path, checkpoints, sft_data, case):
    model_path, options, match = _bad_inputs(tmp_path, checkpoints, sft_data)[case]
    count = CountBatches()
    with pytest.raises(ValueError, match=match) as err:
        dm = SFTDataModule(**options)
        _trainer(tmp_path, count, RectifiedLawCallback()).fit(
            LMModule(model_path), datamodule=NestedSubsetDataModule(dm, budget=64, min_size=16)
        )
    assert count.batches == 0 and "\n" not in str(err.value)


def test_the_tokenizer_must_be_named_for_a_module_that_does_not_say_its_own(tmp_path, sft_data):
    from boring import Boring

    dm = SFTDataModule([sft_data["train"]])
    with pytest.raises(ValueError, match=r"cannot tell the model's tokenizer: set `tokenizer=`"):
        _trainer(tmp_path).fit(Boring(), datamodule=dm)


def test_pairs_from_a_hugging_face_dataset(monkeypatch):
    """`datasets` is optional: a stand-in module checks what we pass to load_dataset and read back."""
    import sys
    import types

    calls = []

    def load_dataset(**kw):
        calls.append(kw)
        if kw["split"] == "empty":
            return []
        return [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(6)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    dm = SFTDataModule(hf_dataset="org/pairs", hf_val_split="test", tokenizer="bytes", encoder_decoder=False)
    dm.setup("fit")
    assert calls == [{"path": "org/pairs", "split": "train"}, {"path": "org/pairs", "split": "test"}]
    assert len(dm.train_set) == len(dm.val_set) == 6  # the fixed validation split, not a share of train
    with pytest.raises(ValueError, match=r"dataset 'org/pairs' split 'empty' has no rows"):
        SFTDataModule(
            hf_dataset="org/pairs", hf_split="empty", tokenizer="bytes", encoder_decoder=False
        ).setup("fit")
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ImportError, match=r"pip install datasets \(or give local .jsonl/.json/.csv files"):
        SFTDataModule(hf_dataset="org/pairs", tokenizer="bytes", encoder_decoder=False).setup("fit")


def test_data_laid_out_for_another_kind_of_model_is_refused_before_training(tmp_path, sft_data):
    from lightning_rectlaw import TextDataModule

    t5 = {"model_type": "t5", "vocab_size": 257, "d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 1,
          "num_heads": 2, "decoder_start_token_id": 256, "pad_token_id": 256,
          "eos_token_id": 256}  # fmt: skip
    count = CountBatches()
    pairs = SFTDataModule([sft_data["train"]], tokenizer="bytes", encoder_decoder=False, max_length=512)
    with pytest.raises(
        ValueError, match=r"laid out with encoder_decoder=False, but the model is an encoder-decoder"
    ):
        _trainer(tmp_path, count).fit(LMModule(config=t5), datamodule=pairs)
    with pytest.raises(ValueError, match=r"packed text blocks are for decoder-only models.*data=sft"):
        _trainer(tmp_path, count).fit(LMModule(config=t5), datamodule=TextDataModule(block_size=16))
    assert count.batches == 0
