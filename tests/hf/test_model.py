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
