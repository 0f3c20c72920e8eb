"""The common case: a Hugging Face causal LM as a LightningModule, and a packed-text DataModule.

``CausalLMModule`` loads ``AutoModelForCausalLM`` from a hub name or local path (real loading
code), or builds one from a config dict (tests and the embedded demo). ``TextDataModule`` reads
local ``.txt``/``.jsonl`` files or text that ships with Python (``pydoc_data.topics``), tokenizes
it (byte-level, or a Hugging Face tokenizer) and packs it into fixed-length blocks: one block is
one fine-tuning example.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric
from typing_extensions import override

__all__ = ["CausalLMModule", "TextDataModule", "TokenCrossEntropy", "builtin_text"]

BYTE_VOCAB = 257  # 256 byte values + end-of-document
EOS_BYTE = 256


class TokenCrossEntropy(Metric):
    """Token-averaged cross-entropy: sum of per-token losses over the number of tokens.

    Averaging per token (not per batch) makes the loss independent of how the held-out set is
    batched, which is what a scaling curve needs.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        shift_logits = logits[:, :-1].reshape(-1, logits.size(-1)).float()
        shift_labels = labels[:, 1:].reshape(-1)
        loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
        self.total += loss.double()
        self.tokens += (shift_labels != -100).sum()

    def compute(self) -> torch.Tensor:
        return (self.total / self.tokens.clamp(min=1)).float()


class CausalLMModule(L.LightningModule):
    """Fine-tune a causal LM; logs ``train_loss`` and the token-level ``val_loss``.

    Args:
        model_name_or_path: hub name or local directory for ``AutoModelForCausalLM.from_pretrained``.
        config: instead, a config dict (with ``model_type``) to build a model from scratch.
        lr: AdamW learning rate (default 3e-4); weight_decay (default 0.0).
        warmup_steps: linear warm-up steps of the learning rate (default 0).
        seed: seed for config-built initial weights (default 0), so every run of a candidate
            starts from the same weights.

    Example::

        model = CausalLMModule("gpt2")                                  # real checkpoint
        model = CausalLMModule(config={"model_type": "gpt2", "n_layer": 2, "n_embd": 64,
                                       "n_head": 2, "vocab_size": 257})  # from a config
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        config: dict[str, Any] | None = None,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if (model_name_or_path is None) == (config is None):
            raise ValueError(
                "give exactly one of `model_name_or_path` (hub name or local path) "
                "or `config` (a dict with 'model_type')"
            )
        self.save_hyperparameters()
        from transformers import AutoConfig, AutoModelForCausalLM

        if model_name_or_path is not None:
            _check_local_path(model_name_or_path)
            self.model = AutoModelForCausalLM.from_pretrained(model_name_or_path)
        else:
            cfg = dict(config)
            model_type = cfg.pop("model_type", None)
            if model_type is None:
                raise ValueError("`config` needs a 'model_type' key, e.g. 'gpt2' or 'llama'")
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
        self.val_ce = TokenCrossEntropy()

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @override
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits

    @override
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        (ids,) = batch
        loss = self.model(input_ids=ids, labels=ids).loss
        self.log("train_loss", loss, prog_bar=True)
        return loss

    @override
    def validation_step(self, batch, batch_idx: int) -> None:
        (ids,) = batch
        self.val_ce.update(self(ids), ids)
        self.log("val_loss", self.val_ce, prog_bar=True, on_step=False, on_epoch=True)

    @override
    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.warmup_steps <= 0:
            return opt
        warm = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _check_local_path(name: str) -> None:
    """A name that can only be a local path (absolute, ``./``, ``~``, or more than one ``/``)
    must exist; a hub id is ``name`` or ``org/name``."""
    path = Path(name).expanduser()
    looks_local = name.startswith(("/", "./", "../", "~")) or name.count("/") > 1
    if looks_local and not path.exists():
        raise FileNotFoundError(
            f"model path {name!r} does not exist; give a directory saved with save_pretrained, "
            "or a hub name like 'gpt2' or 'org/name'"
        )


def builtin_text(name: str = "pydoc_topics") -> list[str]:
    """Documents that ship with Python: ``pydoc_topics`` (English help texts, about 0.45 MB)."""
    if name == "pydoc_topics":
        from pydoc_data.topics import topics

        return [topics[k] for k in sorted(topics)]
    raise ValueError(f"unknown built-in text {name!r}; available: ['pydoc_topics']")


class TextDataModule(L.LightningDataModule):
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
    """

    def __init__(
        self,
        files: Sequence[str] = (),
        builtin: str = "pydoc_topics",
        tokenizer: str = "bytes",
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
        try:
            import datasets
        except ImportError:
            raise ImportError(
                f"data.hf_dataset={self.hf['path']!r} needs the `datasets` package: "
                "pip install datasets (or use data=text_files with local .txt/.jsonl files)"
            ) from None
        ds = datasets.load_dataset(**{k: v for k, v in self.hf.items() if v is not None})
        columns = list(getattr(ds, "column_names", None) or (ds[0].keys() if len(ds) else []))
        if self.text_field not in columns:
            raise ValueError(
                f"dataset {self.hf['path']!r} (split {self.hf['split']!r}) has no column "
                f"{self.text_field!r}; its columns are {columns}: set data.text_field"
            )
        return [row[self.text_field] for row in ds if row[self.text_field]]

    def _encode(self, docs: list[str]) -> torch.Tensor:
        if self.tokenizer_name == "bytes":
            ids: list[int] = []
            for d in docs:
                ids.extend(d.encode("utf-8"))
                ids.append(EOS_BYTE)
            return torch.tensor(ids, dtype=torch.long)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.tokenizer_name)
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        # Documents are packed back to back, each closed by EOS; the tokenizer's own special
        # tokens (BOS, or T5-style EOS) are left out so they are not doubled.
        ids = [i for d in docs for i in tok(d, add_special_tokens=False)["input_ids"] + eos]
        return torch.tensor(ids, dtype=torch.long)

    def _blocks(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.numel() // self.block_size
        return ids[: n * self.block_size].view(n, self.block_size)

    @override
    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        docs = self._documents()
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(docs), generator=g).tolist()
        n_val = max(1, round(len(docs) * self.val_fraction))
        if len(docs) < 2:
            raise ValueError("need at least 2 documents to hold some out for validation")
        val_docs = [docs[i] for i in order[:n_val]]
        train_docs = [docs[i] for i in order[n_val:]]
        val = self._blocks(self._encode(val_docs))
        if self.max_val_blocks is not None:
            val = val[: self.max_val_blocks]
        self.train_set = TensorDataset(self._blocks(self._encode(train_docs)))
        self.val_set = TensorDataset(val)

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
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)
