"""Checkpoints the tests build and save as ``save_pretrained`` leaves them: tiny models of several
families, each with its own tokenizer trained with the ``tokenizers`` library, and SFT files."""

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, PreTrainedTokenizerFast

from lightning_rectlaw.hf.embedded import builtin_pairs, builtin_text

#: A chat template whose assistant turns are marked for the loss ({% generation %}).
MARKED_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}\n{% endif %}{% endfor %}"
)
#: One that marks nothing: refused.
UNMARKED_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"


def bpe_tokenizer(vocab_size: int, specials: list[str], wrap: str | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on Python's help texts; ``wrap``: a template such as ``"$A </s>"``
    for the special tokens the tokenizer adds around a text itself."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(builtin_text()[:40], trainer=trainer)
    if wrap is not None:
        used = [t for t in wrap.split() if t != "$A"]
        tok.post_processor = processors.TemplateProcessing(
            single=wrap, special_tokens=[(t, tok.token_to_id(t)) for t in used]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def save_gpt2(path: Path, vocab_size: int, template: str | None = None, n_embd: int = 32) -> Path:
    """A GPT-2 with its own BPE tokenizer (end token ``<|end|>``, no pad token), saved to ``path``."""
    tok = bpe_tokenizer(vocab_size, ["<|end|>"])
    tok.eos_token = tok.bos_token = "<|end|>"
    if template is not None:
        tok.chat_template = template
    cfg = AutoConfig.for_model(
        "gpt2", n_layer=1, n_embd=n_embd, n_head=2, n_positions=512, vocab_size=len(tok),
        eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def save_t5(path: Path, vocab_size: int = 400) -> Path:
    """A T5 whose tokenizer appends ``</s>`` to a text, as T5's does."""
    tok = bpe_tokenizer(vocab_size, ["<pad>", "</s>"], wrap="$A </s>")
    tok.pad_token, tok.eos_token = "<pad>", "</s>"
    cfg = AutoConfig.for_model(
        "t5", vocab_size=len(tok), d_model=32, d_ff=64, d_kv=16, num_layers=1, num_heads=2,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
    )  # fmt: skip
    AutoModelForSeq2SeqLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def save_bart(path: Path, vocab_size: int = 400) -> Path:
    """A BART whose tokenizer wraps a text in ``<s> ... </s>``, as BART's does."""
    tok = bpe_tokenizer(vocab_size, ["<s>", "<pad>", "</s>"], wrap="<s> $A </s>")
    tok.bos_token, tok.pad_token, tok.eos_token = "<s>", "<pad>", "</s>"
    cfg = AutoConfig.for_model(
        "bart", vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=None,
    )  # fmt: skip
    AutoModelForSeq2SeqLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def write_pairs(path: Path, pairs: list[dict], chat: bool = False) -> Path:
    """``pairs`` as a ``.jsonl`` file of prompt/completion records, or of chats."""
    with path.open("w") as f:
        for p in pairs:
            if chat:
                row = {"messages": [{"role": "user", "content": p["prompt"]},
                                    {"role": "assistant", "content": p["completion"]}]}  # fmt: skip
            else:
                row = p
            f.write(json.dumps(row) + "\n")
    return path


def sft_files(tmp: Path, n_train: int = 600, n_val: int = 48, chat: bool = False) -> tuple[Path, Path]:
    """Train and validation files cut from the embedded pairs."""
    pairs = builtin_pairs()
    suffix = "chat" if chat else "pc"
    train = write_pairs(tmp / f"train_{suffix}.jsonl", pairs[:n_train], chat)
    val = write_pairs(tmp / f"val_{suffix}.jsonl", pairs[-n_val:], chat)
    return train, val
