"""Supervised fine-tuning data: ``SFTDataModule``, one (prompt, response) pair or chat per example.

One example is one record of the user's data, used as given (duplicates kept): the data size D
counts records, the same for every candidate whatever its tokenizer, and the nested subsets are
drawn by record index. Each batch carries the UTF-8 bytes of its responses, so the model logs
``val_bpb``, the loss that candidates with different tokenizers share.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from lightning_rectlaw.core.files import atomic_write_bytes
from lightning_rectlaw.hf.batching import LengthGroupedBatchSampler, SFTCollator, validation_loader
from lightning_rectlaw.hf.embedded import builtin_pairs
from lightning_rectlaw.hf.encoding import Encoded, Encoder
from lightning_rectlaw.hf.formats import (
    Record,
    check_format,
    load_hf_dataset,
    read_records,
    records_from_rows,
)
from lightning_rectlaw.hf.tokenizer import ByteTokenizer, HFTokenizer, Tokenized, load_tokenizer


class Examples(Dataset):
    """Encoded examples, indexed as the records they came from."""

    def __init__(self, examples: list[Encoded]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Encoded:
        return self.examples[i]

    @property
    def lengths(self) -> list[int]:
        return [len(e) for e in self.examples]


class SFTDataModule(Tokenized, L.LightningDataModule):
    """Supervised fine-tuning pairs (or chats) for a decoder-only or encoder-decoder model.

    Formats, masking, chat rendering and truncation: :mod:`lightning_rectlaw.hf.formats` and
    :mod:`lightning_rectlaw.hf.encoding`. Batches are dicts (``input_ids``, ``attention_mask``,
    ``labels`` with -100 off the loss, ``num_bytes``) padded on the right, in length-grouped
    batches that :class:`~lightning_rectlaw.NestedSubsetDataModule` keeps for its subsets.

    Args:
        files: local ``.jsonl``/``.json``/``.csv`` files of training records. With neither
            ``files`` nor ``hf_dataset``: the embedded pairs ``builtin`` (no download).
        val_files: a fixed validation set (as the paper's fixed test set); without it, a seeded
            ``val_fraction`` of the records (default 0.1, at most ``max_val_examples``).
        tokenizer: a Hugging Face tokenizer name or path, or ``"bytes"``. Default ``None``: the
            model's own (its ``model_name_or_path``; bytes for a config-built byte-vocabulary model).
        format: ``"auto"`` (from the fields), ``"prompt_completion"``, ``"alpaca"`` or ``"messages"``.
        fields: our field names mapped to yours, e.g. ``{"prompt": "question", "completion": "answer"}``.
        max_length: tokens per example at most (default 1024); longer ones lose prompt tokens.
        train_on_prompt: train a decoder-only model on the prompt's tokens too (default ``False``);
            validation always scores the response only.
        encoder_decoder: the model's kind; default ``None``: asked of the model being fitted.
        hf_dataset: a Hugging Face dataset name or path (needs ``datasets``), its ``hf_split``
            training split and ``hf_val_split`` (a fixed validation split, or ``None``).
        cache_dir: keep the tokenized examples here, keyed by the records' text, the tokenizer and
            the settings: a sweep tokenizes once per tokenizer. Default ``None``: no cache.

    Example::

        dm = NestedSubsetDataModule(SFTDataModule(["train.jsonl"], val_files=["val.jsonl"]), budget=1/8)
        trainer.fit(LMModule("gpt2"), datamodule=dm)
    """

    #: Bumped whenever the way examples are encoded changes, so older cache files are not reused.
    CACHE_FORMAT = 1

    def __init__(
        self,
        files: Sequence[str | Path] = (),
        *,
        val_files: Sequence[str | Path] = (),
        tokenizer: str | None = None,
        format: str = "auto",
        fields: Mapping[str, str] | None = None,
        max_length: int = 1024,
        train_on_prompt: bool = False,
        batch_size: int = 16,
        val_fraction: float = 0.1,
        max_val_examples: int | None = 512,
        seed: int = 0,
        builtin: str = "stdlib_docs",
        encoder_decoder: bool | None = None,
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        hf_split: str = "train",
        hf_val_split: str | None = None,
        hf_data_files: Any = None,
        num_workers: int = 0,
        cache_dir: str | Path | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        check_format(format, fields)
        if files and hf_dataset:
            raise ValueError("give either `files` or `hf_dataset`, not both")
        if not 0 < val_fraction < 1:
            raise ValueError(f"`val_fraction` must be in (0, 1), got {val_fraction}")
        if max_length < 2:
            raise ValueError(f"`max_length` must be at least 2, got {max_length}")
        self.files, self.val_files = [str(f) for f in files], [str(f) for f in val_files]
        self.tokenizer_name, self.format, self.fields = tokenizer, format, dict(fields or {})
        self.max_length, self.train_on_prompt = int(max_length), bool(train_on_prompt)
        self.batch_size, self.val_fraction, self.max_val_examples = batch_size, val_fraction, max_val_examples
        self.seed, self.builtin, self.encoder_decoder = seed, builtin, encoder_decoder
        self.hf = {"path": hf_dataset, "name": hf_config, "data_files": hf_data_files}
        self.hf_split, self.hf_val_split = hf_split, hf_val_split
        self.num_workers, self.trust_remote_code = num_workers, trust_remote_code
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.truncated: dict[str, int] = {}
        self.train_set: Examples | None = None
        self.val_set: Examples | None = None

    # --- what the model and the sweep read ------------------------------------------------------

    @cached_property
    def tokenizer(self) -> ByteTokenizer | HFTokenizer:
        if self.tokenizer_name is None:
            self.tokenizer_name = self._from_model("default_tokenizer", "tokenizer")
        return load_tokenizer(self.tokenizer_name, self.trust_remote_code)

    def _from_model(self, attribute: str, option: str) -> Any:
        """What the model being fitted says of itself (its tokenizer, its kind)."""
        module = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        value = getattr(module, attribute, None)
        if value is None:
            raise ValueError(
                f"SFTDataModule cannot tell the model's {option}: set `{option}=` (in the app, "
                f"data.{option}), or fit an LMModule, which names its own"
            )
        return value

    # --- setup ----------------------------------------------------------------------------------

    @override
    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        tokenizer = self.tokenizer
        if self.encoder_decoder is None:
            self.encoder_decoder = bool(self._from_model("is_encoder_decoder", "encoder_decoder"))
        train, val = self._split(*self._records())
        encoder = Encoder(tokenizer, self.max_length, self.encoder_decoder)
        encoded = self._cached(train, val, encoder)
        self.train_set, self.val_set = Examples(encoded["train"]), Examples(encoded["val"])
        self._report_truncation()

    def _records(self) -> tuple[list[Record], list[Record]]:
        """The training records and the fixed validation records (empty: split off the training)."""
        if self.hf["path"]:
            return self._hf_records(self.hf_split), (
                self._hf_records(self.hf_val_split) if self.hf_val_split else []
            )
        if not self.files:
            rows = [(f"{self.builtin}, record {i}", r) for i, r in enumerate(builtin_pairs(self.builtin), 1)]
            return list(records_from_rows(rows, self.format, self.fields)), []
        val = read_records(self.val_files, self.format, self.fields) if self.val_files else []
        return read_records(self.files, self.format, self.fields), val

    def _split(self, train: list[Record], val: list[Record]) -> tuple[list[Record], list[Record]]:
        """A seeded split of the records when no validation set is given; the cap on validation."""
        if not val:
            if len(train) < 2:
                raise ValueError(
                    "need at least 2 records to hold some out for validation (or give val_files)"
                )
            order = np.random.default_rng(self.seed).permutation(len(train))
            n_val = max(1, round(len(train) * self.val_fraction))
            val = [train[i] for i in sorted(order[:n_val])]
            train = [train[i] for i in sorted(order[n_val:])]
        return train, val[: self.max_val_examples]

    def _hf_records(self, split: str) -> list[Record]:
        instead = "give local .jsonl/.json/.csv files as data.files"
        ds = load_hf_dataset(self.hf, instead, split=split)
        rows = [(f"{self.hf['path']}[{split}], row {i}", dict(r)) for i, r in enumerate(ds, start=1)]
        if not rows:
            raise ValueError(f"dataset {self.hf['path']!r} split {split!r} has no rows")
        return list(records_from_rows(rows, self.format, self.fields))

    def _cached(self, train: list[Record], val: list[Record], encoder: Encoder) -> dict[str, list[Encoded]]:
        """The encoded examples, from the cache when the same records and settings made them."""
        path = None if self.cache_dir is None else self.cache_dir / f"sft-{self._cache_key(train, val)}.pt"
        if path is not None and path.exists():
            saved = torch.load(path, weights_only=True)
            return {k: [Encoded(*fields) for fields in rows] for k, rows in saved.items()}
        encoded = {"train": [encoder(r) for r in train], "val": [encoder(r) for r in val]}
        if path is not None:
            buf = io.BytesIO()
            rows = {
                k: [[e.input_ids, e.loss_mask, e.labels, e.num_bytes, e.truncated] for e in v]
                for k, v in encoded.items()
            }
            torch.save(rows, buf)
            atomic_write_bytes(path, buf.getvalue())  # concurrent jobs: the last rename wins
        return encoded

    def _cache_key(self, train: list[Record], val: list[Record]) -> str:
        h = hashlib.sha256()
        settings = [self.CACHE_FORMAT, self.max_length, self.encoder_decoder, self.tokenizer.info.sha256]
        h.update(json.dumps(settings).encode())
        for part in (train, val):
            h.update(b"|split|")
            for r in part:
                text = json.dumps([r.prompt, r.response, r.messages]).encode()
                h.update(len(text).to_bytes(8, "little") + text)
        return h.hexdigest()[:32]

    def _report_truncation(self) -> None:
        self.truncated = {}
        for split, data in (("train", self.train_set), ("val", self.val_set)):
            cut = [e.truncated for e in data.examples if e.truncated]
            self.truncated[f"{split}_examples"], self.truncated[f"{split}_tokens"] = len(cut), sum(cut)
            if cut:
                rank_zero_info(
                    f"[rectlaw] {len(cut)} of {len(data)} {split} examples lost {sum(cut)} prompt tokens "
                    f"in all to max_length={self.max_length}"
                )

    # --- loaders --------------------------------------------------------------------------------

    @override
    def train_dataloader(self) -> DataLoader:
        sampler = LengthGroupedBatchSampler(self.train_set.lengths, self.batch_size, seed=self.seed)
        collate = SFTCollator(self.tokenizer.pad_id, train_on_prompt=self.train_on_prompt)
        return DataLoader(
            self.train_set, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers
        )

    @override
    def val_dataloader(self) -> DataLoader:
        collate = SFTCollator(self.tokenizer.pad_id)
        return validation_loader(
            self.val_set, self.batch_size, collate, self.val_set.lengths, num_workers=self.num_workers
        )
