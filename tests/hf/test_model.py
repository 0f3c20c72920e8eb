"""LMModule: each checkpoint through the Auto class that loads it whole, or refused."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from lightning_rectlaw import CausalLMModule, LMModule

T5 = {"model_type": "t5", "vocab_size": 257, "d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 1,
      "num_heads": 2, "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 256}  # fmt: skip


def test_kind_and_tokenizer_come_from_the_checkpoint(checkpoints):
    gpt2, t5 = LMModule(str(checkpoints["gpt2_bpe300"])), LMModule(str(checkpoints["t5"]))
    assert (gpt2.is_encoder_decoder, type(gpt2.model).__name__) == (False, "GPT2LMHeadModel")
    assert (t5.is_encoder_decoder, type(t5.model).__name__) == (True, "T5ForConditionalGeneration")
    assert t5.default_tokenizer == str(checkpoints["t5"]) and gpt2.model.training
    built = LMModule(config=T5)  # a config-built encoder-decoder with the byte vocabulary
    assert built.is_encoder_decoder and built.default_tokenizer == "bytes"


def test_causal_lm_module_refuses_an_encoder_decoder(checkpoints):
    with pytest.raises(ValueError, match=r"is an encoder-decoder model \(t5\); use LMModule"):
        CausalLMModule(str(checkpoints["t5"]))


def test_a_checkpoint_missing_weights_is_refused_not_re_initialised(tmp_path, checkpoints):
    src = checkpoints["bart"]
    dst = tmp_path / "bart_no_head"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    weights = load_file(dst / "model.safetensors")
    dropped = {k: v for k, v in weights.items() if not k.startswith("model.encoder.layers.0.fc1")}
    save_file(dropped, dst / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        ValueError, match=r"lacks 2 weight\(s\) that AutoModelForSeq2SeqLM would initialise at random"
    ):
        LMModule(str(dst))


def test_lora_adapts_an_encoder_decoder_too():
    pytest.importorskip("peft")
    model = LMModule(config=T5, lora={"r": 2, "target_modules": ["q", "v"]})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    batch = {"input_ids": torch.randint(0, 256, (2, 8)), "labels": torch.randint(0, 256, (2, 4))}
    assert model.training_step(batch, 0).requires_grad


TINY = {"model_type": "gpt2", "n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 257, "n_positions": 32}


def test_dict_batches_of_hf_collators_mask_padding_and_labels():
    model = CausalLMModule(config=TINY).eval()  # no dropout: the losses must match exactly
    ids = torch.randint(0, 256, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # right padding
    padded = ids.clone()
    padded[1, 10:] = 0
    # labels default to the inputs with the padding masked out (-100)
    from lightning_rectlaw.hf.model import unpack_batch

    labels = unpack_batch({"input_ids": padded, "attention_mask": mask}).labels
    assert (labels[1, 10:] == -100).all() and torch.equal(labels[0], ids[0])
    # the loss over a padded dict batch equals the loss over the unpadded sequence alone
    model.val_ce.reset()
    model.validation_step({"input_ids": padded[1:], "attention_mask": mask[1:]}, 0)
    padded_loss = model.val_ce.compute()
    model.val_ce.reset()
    model.validation_step((ids[1:, :10],), 0)
    assert padded_loss == pytest.approx(model.val_ce.compute().item(), rel=1e-5)
    # explicit labels with -100 are respected; the training step takes the dict too
    labels = ids.clone()
    labels[:, :8] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    with torch.no_grad():
        full = model.model(input_ids=ids, labels=ids).loss.item()
        assert model.model(input_ids=ids, labels=labels).loss.item() != pytest.approx(full)
    with pytest.raises(KeyError, match="input_ids"):
        unpack_batch({"ids": ids})
    assert unpack_batch(batch).labels is labels


def test_weights_dtype_is_configurable():
    model = CausalLMModule(config=TINY, dtype="bfloat16")
    assert next(model.model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="`dtype` should be one of"):
        CausalLMModule(config=TINY, dtype="int3")


def test_lora_trains_only_the_adapters():
    pytest.importorskip("peft", reason="peft not installed (pip install peft)")
    model = CausalLMModule(config=TINY, lora={"r": 4, "lora_alpha": 8, "target_modules": ["c_attn"]})
    opt = model.configure_optimizers()
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    names = [n for n, p in model.named_parameters() if id(p) in trained]
    assert names and all("lora_" in n for n in names)
    assert sum(p.numel() for p in model.parameters() if id(p) in trained) < model.num_params / 10


def test_lora_without_peft_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)  # as if not installed
    with pytest.raises(ImportError, match=r"`lora=` needs the `peft` package: pip install peft"):
        CausalLMModule(config=TINY, lora={"r": 4})
