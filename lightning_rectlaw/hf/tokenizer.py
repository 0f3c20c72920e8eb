"""One view of a tokenizer for the datamodules: the byte-level one (no download) or a Hugging Face one.

Both give what the data needs and nothing more: the ids of a text without special tokens, the
end-of-sequence id (and the beginning-of-sequence id where the tokenizer puts one first), the pad
id, the vocabulary size, the chat template, and an identity (a name and a hash of the whole
tokenizer: vocabulary, merges, special tokens) that the caches and the sweep summary use.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

BYTE_VOCAB = 257  # 256 byte values + end-of-document
EOS_BYTE = 256
BYTES = "bytes"


@dataclass(frozen=True)
class TokenizerInfo:
    """What tells two tokenizers apart: a name to show and a hash of everything that maps text to ids."""

    name: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


class ByteTokenizer:
    """UTF-8 bytes as ids 0-255 and 256 as the end of a document; no BOS, pads with the end id."""

    name = BYTES
    special_wrap: tuple[list[int], list[int]] = ([], [])
    eos_id = EOS_BYTE
    pad_id = EOS_BYTE
    vocab_size = BYTE_VOCAB
    chat_template: str | None = None
    hf = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode_bytes(self, ids: list[int]) -> int:
        """UTF-8 bytes that ``ids`` stand for (the end id stands for none)."""
        return sum(1 for i in ids if i != EOS_BYTE)

    @cached_property
    def info(self) -> TokenizerInfo:
        return TokenizerInfo(BYTES, hashlib.sha256(b"bytes:257:eos=256").hexdigest()[:16])


class HFTokenizer:
    """A Hugging Face tokenizer (hub name or local directory), loaded on first use."""

    def __init__(self, name_or_path: str, trust_remote_code: bool = False) -> None:
        self.name = str(name_or_path)
        self.trust_remote_code = trust_remote_code

    @cached_property
    def hf(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.name, trust_remote_code=self.trust_remote_code)

    def encode(self, text: str) -> list[int]:
        return self.hf(text, add_special_tokens=False)["input_ids"]

    def decode_bytes(self, ids: list[int]) -> int:
        return len(self.hf.decode(ids, skip_special_tokens=True).encode("utf-8"))

    @cached_property
    def eos_id(self) -> int | None:
        return self.hf.eos_token_id

    @cached_property
    def special_wrap(self) -> tuple[list[int], list[int]]:
        """The special ids the tokenizer puts before and after a text of its own accord: Llama's
        BOS before, T5's EOS after, BART's ``<s>`` and ``</s>`` around; none for GPT-2."""
        plain, special = self.encode("a b"), self.hf("a b")["input_ids"]
        for k in range(len(special) - len(plain) + 1):
            if special[k : k + len(plain)] == plain:
                return special[:k], special[k + len(plain) :]
        return [], []

    @cached_property
    def pad_id(self) -> int | None:
        return self.hf.pad_token_id if self.hf.pad_token_id is not None else self.eos_id

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    @property
    def chat_template(self) -> str | None:
        return getattr(self.hf, "chat_template", None)

    @cached_property
    def info(self) -> TokenizerInfo:
        tok = self.hf
        backend = getattr(tok, "backend_tokenizer", None)
        ident = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()))
        special = json.dumps(
            [type(tok).__name__, tok.all_special_tokens, tok.eos_token_id, self.chat_template],
            default=str,
        )
        return TokenizerInfo(self.name, hashlib.sha256((special + ident).encode()).hexdigest()[:16])


class Tokenized:
    """What a datamodule with a ``tokenizer`` tells the model and the sweep about it."""

    tokenizer: ByteTokenizer | HFTokenizer

    @property
    def vocab_size(self) -> int:
        """Token ids the data can hold: 257 for bytes (the end id included), the tokenizer's length else."""
        return self.tokenizer.vocab_size

    @property
    def tokenizer_info(self) -> dict[str, str]:
        """The tokenizer's name and a hash of all of it (vocabulary, merges, special tokens)."""
        return self.tokenizer.info.to_dict()


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> ByteTokenizer | HFTokenizer:
    """``"bytes"`` gives the byte-level tokenizer; anything else a Hugging Face one."""
    return ByteTokenizer() if name_or_path == BYTES else HFTokenizer(name_or_path, trust_remote_code)
