"""Packed text for causal-LM fine-tuning: ``TextDataModule``.

Reads local ``.txt``/``.jsonl`` files, a Hugging Face dataset, or text that ships with Python
(``pydoc_data.topics``), tokenizes it (byte-level, or a Hugging Face tokenizer) and packs it into
fixed-length blocks: one block is one fine-tuning example. Each block carries the UTF-8 bytes of
the text its scored tokens cover, so the model can log ``val_bpb``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from lightning_rectlaw.core.files import atomic_write_bytes
from lightning_rectlaw.hf.batching import validation_loader
from lightning_rectlaw.hf.embedded import builtin_text
from lightning_rectlaw.hf.formats import load_hf_dataset
from lightning_rectlaw.hf.tokenizer import BYTES, ByteTokenizer, HFTokenizer, Tokenized, load_tokenizer


class TextDataModule(Tokenized, L.LightningDataModule):
    """Packed text blocks for causal-LM fine-tuning.

    Args:
        files: local ``.txt`` files (one document each) or ``.jsonl`` files (one ``{"text": ...}``
            per line). Default: the built-in text ``builtin``.
        builtin: text shipped with Python used when ``files`` and ``hf_dataset`` are empty
            (default ``pydoc_topics``).
        hf_dataset: a Hugging Face dataset name or local path for ``datasets.load_dataset``
            (needs ``pip install datasets``); its ``hf_split`` split (default ``"train"``) and
            ``text_field`` column (default ``"text"``) give one document per row. ``hf_config`` is
            the dataset configuration, ``hf_data_files`` local data files (e.g. with
            ``hf_dataset="json"``).
        tokenizer: ``"bytes"`` (byte-level, vocab 257, no download) or a Hugging Face tokenizer
            name/path.
        block_size: tokens per example (default 128).
        val_fraction: share of documents held out for validation (default 0.1), chosen by a
            seeded shuffle of documents so train and validation never share a document.
        max_val_blocks: cap on validation blocks, to bound evaluation time (default 256).
        batch_size: default 16; seed: default 0.
        cache_dir: keep the tokenized blocks here (``~`` expanded), keyed by a hash of the
            documents' text, the tokenizer's vocabulary and the settings above: the jobs of a
            sweep tokenize once, and any change in the text or tokenizer tokenizes again.
            Default ``None``: no cache. The sweep app's data configs set it.
    """

    #: Bumped whenever the way blocks are built changes, so older cache files are not reused.
    CACHE_FORMAT = 2

    def __init__(
        self,
        files: Sequence[str] = (),
        builtin: str = "pydoc_topics",
        tokenizer: str = BYTES,
        block_size: int = 128,
        val_fraction: float = 0.1,
        max_val_blocks: int | None = 256,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        hf_split: str = "train",
        hf_data_files: Any = None,
        text_field: str = "text",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if files and hf_dataset:
            raise ValueError("give either `files` or `hf_dataset`, not both")
        if not 0 < val_fraction < 1:
            raise ValueError(f"`val_fraction` must be in (0, 1), got {val_fraction}")
        if block_size < 2:
            raise ValueError(f"`block_size` must be at least 2, got {block_size}")
        self.files = [str(f) for f in files]
        self.builtin, self.tokenizer_name = builtin, tokenizer
        self.block_size, self.val_fraction = block_size, val_fraction
        self.max_val_blocks, self.batch_size = max_val_blocks, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.hf = {"path": hf_dataset, "name": hf_config, "split": hf_split, "data_files": hf_data_files}
        self.text_field = text_field
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def _documents(self) -> list[str]:
        if self.hf["path"]:
            return self._hf_documents()
        if not self.files:
            return builtin_text(self.builtin)
        docs = []
        for f in map(Path, self.files):
            if not f.exists():
                raise FileNotFoundError(f"text file {str(f)!r} does not exist")
            if f.suffix == ".jsonl":
                for i, line in enumerate(f.read_text().splitlines(), start=1):
                    if line.strip():
                        try:
                            docs.append(json.loads(line)["text"])
                        except (json.JSONDecodeError, KeyError, TypeError):
                            raise ValueError(
                                f"{f}, line {i}: expected a JSON object with a 'text' field"
                            ) from None
            else:
                docs.append(f.read_text())
        return docs

    def _hf_documents(self) -> list[str]:
        ds = load_hf_dataset(self.hf, "use data=text_files with local .txt/.jsonl files")
        columns = list(getattr(ds, "column_names", None) or (ds[0].keys() if len(ds) else []))
        if self.text_field not in columns:
            raise ValueError(
                f"dataset {self.hf['path']!r} (split {self.hf['split']!r}) has no column "
                f"{self.text_field!r}; its columns are {columns}: set data.text_field"
            )
        return [row[self.text_field] for row in ds if row[self.text_field]]

    def _encode(self, docs: list[str]) -> torch.Tensor:
        # Documents are packed back to back, each closed by the end token; the tokenizer's own
        # special tokens (BOS, or T5-style EOS) are left out so they are not doubled.
        tok = self.tokenizer
        eos = [tok.eos_id] if tok.eos_id is not None else []
        return torch.tensor([i for d in docs for i in tok.encode(d) + eos], dtype=torch.long)

    @cached_property
    def tokenizer(self) -> ByteTokenizer | HFTokenizer:
        return load_tokenizer(self.tokenizer_name)

    def _cache_key(self, docs: list[str]) -> str:
        """A hash of everything the blocks depend on: the text, the tokenizer, the settings."""
        h = hashlib.sha256()
        settings = [self.CACHE_FORMAT, self.block_size, self.val_fraction, self.max_val_blocks, self.seed]
        h.update(json.dumps(settings).encode() + self.tokenizer.info.sha256.encode())
        for d in docs:
            data = d.encode("utf-8")
            h.update(len(data).to_bytes(8, "little") + data)
        return h.hexdigest()[:32]

    def _blocks(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.numel() // self.block_size
        return ids[: n * self.block_size].view(n, self.block_size)

    def _bytes(self, blocks: torch.Tensor) -> torch.Tensor:
        """The UTF-8 bytes that each block's scored tokens (all but its first, which nothing
        predicts) stand for: the denominator of ``val_bpb``."""
        return torch.tensor([self.tokenizer.decode_bytes(b[1:].tolist()) for b in blocks], dtype=torch.long)

    @override
    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        docs = self._documents()
        if len(docs) < 2:
            raise ValueError("need at least 2 documents to hold some out for validation")
        path = None if self.cache_dir is None else self.cache_dir / f"blocks-{self._cache_key(docs)}.pt"
        if path is not None and path.exists():
            blocks = torch.load(path, weights_only=True)
            train, val, val_bytes = blocks["train"], blocks["val"], blocks["val_bytes"]
        else:
            order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(self.seed)).tolist()
            n_val = max(1, round(len(docs) * self.val_fraction))
            val = self._blocks(self._encode([docs[i] for i in order[:n_val]]))[: self.max_val_blocks]
            train = self._blocks(self._encode([docs[i] for i in order[n_val:]]))
            val_bytes = self._bytes(val)
            if path is not None:
                buf = io.BytesIO()
                torch.save({"train": train, "val": val, "val_bytes": val_bytes}, buf)
                atomic_write_bytes(path, buf.getvalue())  # concurrent jobs: the last rename wins
        self.train_set = TensorDataset(train)
        self.val_set = TensorDataset(val, val_bytes)

    @override
    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )

    @override
    def val_dataloader(self) -> DataLoader:
        return validation_loader(self.val_set, self.batch_size, num_workers=self.num_workers)
