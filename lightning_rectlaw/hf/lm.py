"""The common case: a Hugging Face causal LM as a LightningModule, and a packed-text DataModule.

``CausalLMModule`` loads ``AutoModelForCausalLM`` from a hub name or local path (real loading
code), or builds one from a config dict (tests and the embedded demo). ``TextDataModule`` reads
local ``.txt``/``.jsonl`` files or text that ships with Python (``pydoc_data.topics``), tokenizes
it (byte-level, or a Hugging Face tokenizer) and packs it into fixed-length blocks: one block is
one fine-tuning example.
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
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric
from typing_extensions import override

from lightning_rectlaw.core.files import atomic_write_bytes

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

    Batches are the dicts of Hugging Face collators (``input_ids``, optional ``attention_mask``,
    optional ``labels`` where ``-100`` masks a token out of the loss; without ``labels`` the
    inputs are the labels and padding is masked) or ``(input_ids,)`` tuples as
    :class:`TextDataModule` gives.

    Args:
        model_name_or_path: hub name or local directory for ``AutoModelForCausalLM.from_pretrained``.
        config: instead, a config dict (with ``model_type``) to build a model from scratch.
        lr: AdamW learning rate (default 3e-4); weight_decay (default 0.0).
        warmup_steps: linear warm-up steps of the learning rate (default 0).
        seed: seed for config-built initial weights (default 0), so every run of a candidate
            starts from the same weights.
        dtype: the weights' dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``, or ``"auto"``
            (a checkpoint's own dtype). Default ``None``: float32, as Lightning's precision
            settings expect; ``bfloat16`` weights halve the memory of a 7B candidate.
        lora: LoRA instead of full fine-tuning, as ``peft.LoraConfig`` options (e.g.
            ``{"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"]}``); only the
            adapters train. Needs ``pip install peft`` (the ``lora`` extra).

    Example::

        model = CausalLMModule("gpt2")                                  # real checkpoint
        model = CausalLMModule("meta-llama/Llama-2-7b-hf", dtype="bfloat16", lora={"r": 16})
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
        dtype: str | None = None,
        lora: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if (model_name_or_path is None) == (config is None):
            raise ValueError(
                "give exactly one of `model_name_or_path` (hub name or local path) "
                "or `config` (a dict with 'model_type')"
            )
        torch_dtype = _dtype(dtype)
        self.save_hyperparameters()
        from transformers import AutoConfig, AutoModelForCausalLM

        if model_name_or_path is not None:
            _check_local_path(model_name_or_path)
            kw = {} if torch_dtype is None else {"dtype": torch_dtype}
            self.model = AutoModelForCausalLM.from_pretrained(model_name_or_path, **kw)
        else:
            cfg = dict(config)
            model_type = cfg.pop("model_type", None)
            if model_type is None:
                raise ValueError("`config` needs a 'model_type' key, e.g. 'gpt2' or 'llama'")
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
            if isinstance(torch_dtype, torch.dtype):
                self.model.to(torch_dtype)
        if lora is not None:
            self.model = _with_lora(self.model, lora)
        self.val_ce = TokenCrossEntropy()

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @override
    def setup(self, stage: str) -> None:
        """Before any training: the data's token ids must mean something to this model."""
        dm = self.trainer.datamodule
        tokenizer, data_vocab = getattr(dm, "tokenizer_name", None), getattr(dm, "vocab_size", None)
        if data_vocab is None:  # not a TextDataModule: the user's own tokenization
            return
        model_vocab = self.model.get_input_embeddings().num_embeddings
        checkpoint = self.hparams.model_name_or_path
        if data_vocab > model_vocab:
            raise ValueError(
                f"the data's tokenizer ({tokenizer!r}) has {data_vocab} token ids but the model's "
                f"embedding has {model_vocab}: ids past it cannot be looked up; tokenize with the "
                "model's own tokenizer (data.tokenizer='${model.model_name_or_path}')"
            )
        if tokenizer == "bytes" and checkpoint is not None and model_vocab != data_vocab:
            raise ValueError(
                f"the checkpoint {checkpoint!r} reads the ids of its own tokenizer ({model_vocab} "
                f"tokens), but the data is tokenized byte by byte (data.tokenizer=bytes): byte ids "
                "mean other tokens to it; set data.tokenizer='${model.model_name_or_path}'"
            )

    @override
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    @override
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        ids, mask, labels = unpack_batch(batch)
        loss = self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
        self.log("train_loss", loss, prog_bar=True, batch_size=ids.size(0))
        return loss

    @override
    def validation_step(self, batch, batch_idx: int) -> None:
        ids, mask, labels = unpack_batch(batch)
        self.val_ce.update(self(ids, mask), labels)
        self.log("val_loss", self.val_ce, prog_bar=True, on_step=False, on_epoch=True, batch_size=ids.size(0))

    @override
    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]  # LoRA: the adapters only
        opt = torch.optim.AdamW(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.warmup_steps <= 0:
            return opt
        warm = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def unpack_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(input_ids, attention_mask, labels)`` from a Hugging Face collator's dict, an
    ``(input_ids,)`` tuple or a tensor. Without ``labels``, the inputs are the labels, with
    the padding (``attention_mask == 0``) set to ``-100`` so it is not scored."""
    if isinstance(batch, Mapping):
        if "input_ids" not in batch:
            raise KeyError(f"a dict batch needs 'input_ids' (got keys {sorted(batch)})")
        ids, mask, labels = batch["input_ids"], batch.get("attention_mask"), batch.get("labels")
    else:
        ids, mask, labels = (batch if isinstance(batch, torch.Tensor) else batch[0]), None, None
    if labels is None:
        labels = ids if mask is None else ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _dtype(name: str | None) -> torch.dtype | str | None:
    if name is None or name == "auto":
        return name
    if name not in _DTYPES:
        raise ValueError(f"`dtype` should be one of {[*_DTYPES, 'auto']} or None, got {name!r}")
    return _DTYPES[name]


def _with_lora(model, options: dict[str, Any]):
    """``model`` with LoRA adapters from ``peft`` (only they train)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError(
            "`lora=` needs the `peft` package: pip install peft (or lightning-rectlaw[lora])"
        ) from None
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **dict(options)))


def _check_local_path(name: str) -> None:
    """A name that can only be a local path (absolute, ``./``, ``~``, or more than one ``/``)
    must exist; a hub id is ``name`` or ``org/name``."""
    looks_local = name.startswith(("/", "./", "../", "~")) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().exists():
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
        cache_dir: keep the tokenized blocks here (``~`` expanded), keyed by a hash of the
            documents' text, the tokenizer's vocabulary and the settings above: the jobs of a
            sweep tokenize once, and any change in the text or tokenizer tokenizes again.
            Default ``None``: no cache. The sweep app's data configs set it.
    """

    #: Bumped whenever the way blocks are built changes, so older cache files are not reused.
    CACHE_FORMAT = 1

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
            return torch.tensor([i for d in docs for i in (*d.encode("utf-8"), EOS_BYTE)], dtype=torch.long)
        tok = self._tokenizer
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        # Documents are packed back to back, each closed by EOS; the tokenizer's own special
        # tokens (BOS, or T5-style EOS) are left out so they are not doubled.
        ids = [i for d in docs for i in tok(d, add_special_tokens=False)["input_ids"] + eos]
        return torch.tensor(ids, dtype=torch.long)

    @property
    def vocab_size(self) -> int:
        """Token ids the data can hold: 257 for bytes (EOS included), the tokenizer's length else."""
        return BYTE_VOCAB if self.tokenizer_name == "bytes" else len(self._tokenizer)

    @cached_property
    def _tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.tokenizer_name)

    def _cache_key(self, docs: list[str]) -> str:
        """A hash of everything the blocks depend on: the text, the tokenizer, the settings."""
        h = hashlib.sha256()
        settings = [self.CACHE_FORMAT, self.block_size, self.val_fraction, self.max_val_blocks, self.seed]
        h.update(json.dumps(settings).encode())
        if self.tokenizer_name == "bytes":
            h.update(b"bytes")
        else:
            tok = self._tokenizer
            backend = getattr(tok, "backend_tokenizer", None)
            ident = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()))
            h.update(f"{type(tok).__name__}:{tok.eos_token_id}:".encode() + ident.encode())
        for d in docs:
            data = d.encode("utf-8")
            h.update(len(data).to_bytes(8, "little") + data)
        return h.hexdigest()[:32]

    def _blocks(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.numel() // self.block_size
        return ids[: n * self.block_size].view(n, self.block_size)

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
            train, val = blocks["train"], blocks["val"]
        else:
            order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(self.seed)).tolist()
            n_val = max(1, round(len(docs) * self.val_fraction))
            val = self._blocks(self._encode([docs[i] for i in order[:n_val]]))[: self.max_val_blocks]
            train = self._blocks(self._encode([docs[i] for i in order[n_val:]]))
            if path is not None:
                buf = io.BytesIO()
                torch.save({"train": train, "val": val}, buf)
                atomic_write_bytes(path, buf.getvalue())  # concurrent jobs: the last rename wins
        self.train_set = TensorDataset(train)
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
