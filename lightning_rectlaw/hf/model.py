"""A Hugging Face language model as a LightningModule: decoder-only or encoder-decoder.

``LMModule`` loads a checkpoint by hub name or local path with the Auto class its config calls for
(``AutoModelForCausalLM``, or ``AutoModelForSeq2SeqLM`` where ``is_encoder_decoder``), refuses one
that neither loads faithfully, and trains it in train mode. It logs the per-token ``val_loss`` and,
when the batches carry the bytes of their target text, ``val_bpb``: the loss in bits per UTF-8 byte,
which candidates with different tokenizers share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import Metric
from typing_extensions import override

from lightning_rectlaw.hf.tokenizer import BYTE_VOCAB, BYTES


class _SummedNLL(Metric):
    """Negative log-likelihood summed over the scored tokens, over a count summed alike (DDP-safe)."""

    full_state_update = False
    higher_is_better = False
    scale = 1.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, nll_sum: torch.Tensor, count: torch.Tensor | int) -> None:
        self.total += nll_sum.double()
        self.count += torch.as_tensor(count, device=self.count.device).sum().long()

    def compute(self) -> torch.Tensor:
        return (self.total / (self.count.clamp(min=1) * self.scale)).float()


class TokenCrossEntropy(_SummedNLL):
    """Token-averaged cross-entropy (``val_loss``): summed NLL over the tokens scored.

    Averaging per token (not per batch) makes the loss independent of batching, as a curve needs.
    """


class BitsPerByte(_SummedNLL):
    r"""``val_bpb``, lm-evaluation-harness's ``bits_per_byte`` over the whole validation set:

    .. math:: \mathrm{bpb} = \frac{\sum_{t \in \text{scored}} -\ln p(t)}{\ln 2 \cdot \text{target bytes}}

    where the target bytes are the UTF-8 bytes of the response texts as written in the data.
    """

    scale = math.log(2)


class LMBatch(NamedTuple):
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    labels: torch.Tensor
    num_bytes: torch.Tensor | None  # UTF-8 bytes of each example's scored text; None: unknown


def unpack_batch(batch: Any) -> LMBatch:
    """An :class:`LMBatch` from a Hugging Face collator's dict (``input_ids``, optional
    ``attention_mask``, ``labels`` and ``num_bytes``), an ``(input_ids[, num_bytes])`` tuple or a
    tensor. Without ``labels`` the inputs are the labels, padding (``attention_mask == 0``) set to
    ``-100`` so it is not scored."""
    if isinstance(batch, Mapping):
        if "input_ids" not in batch:
            raise KeyError(f"a dict batch needs 'input_ids' (got keys {sorted(batch)})")
        ids, mask, labels = batch["input_ids"], batch.get("attention_mask"), batch.get("labels")
        num_bytes = batch.get("num_bytes")
    elif isinstance(batch, torch.Tensor):
        ids, mask, labels, num_bytes = batch, None, None, None
    else:
        ids, mask, labels, num_bytes = batch[0], None, None, (batch[1] if len(batch) > 1 else None)
    if labels is None:
        labels = ids if mask is None else ids.masked_fill(mask == 0, -100)
    return LMBatch(ids, mask, labels, num_bytes)


def summed_nll(logits: torch.Tensor, labels: torch.Tensor, shift: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL summed over the labelled tokens, and their count; ``shift``: a causal LM's logits at
    position i predict the token at i + 1."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    flat = labels.reshape(-1)
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), flat, ignore_index=-100, reduction="sum"
    )
    return nll, (flat != -100).sum()


class LMModule(L.LightningModule):
    """Fine-tune a Hugging Face language model, decoder-only or encoder-decoder.

    A checkpoint's kind comes from its config: ``is_encoder_decoder`` (T5, mT5, BART, ...) loads
    through ``AutoModelForSeq2SeqLM``, the rest through ``AutoModelForCausalLM``. A checkpoint that
    its Auto class cannot load whole (a saved architecture the class does not build, or weights it
    would re-initialise) is refused before training. Logs ``train_loss``, the per-token
    ``val_loss`` and, when batches carry ``num_bytes``, ``val_bpb``.

    Args:
        model_name_or_path: hub name or local directory saved with ``save_pretrained``.
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
        trust_remote_code: let a checkpoint run its own modelling code (default ``False``).

    Example::

        model = LMModule("gpt2")                                     # real checkpoints
        model = LMModule("google/flan-t5-base")                      # an encoder-decoder
        model = LMModule("meta-llama/Llama-2-7b-hf", dtype="bfloat16", lora={"r": 16})
        model = LMModule(config={"model_type": "gpt2", "n_layer": 2, "n_embd": 64,
                                 "n_head": 2, "vocab_size": 257})    # from a config
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        *,
        config: dict[str, Any] | None = None,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        seed: int = 0,
        dtype: str | None = None,
        lora: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        if (model_name_or_path is None) == (config is None):
            raise ValueError(
                "give exactly one of `model_name_or_path` (hub name or local path) "
                "or `config` (a dict with 'model_type')"
            )
        torch_dtype = _dtype(dtype)
        self.save_hyperparameters()
        if model_name_or_path is not None:
            self.model = _load_pretrained(model_name_or_path, torch_dtype, trust_remote_code, self._kinds)
        else:
            self.model = _build_from_config(config, seed, self._kinds)
            if isinstance(torch_dtype, torch.dtype):
                self.model.to(torch_dtype)
        self.model.train()  # from_pretrained returns eval mode: dropout as the config says
        if lora is not None:
            self.model = _with_lora(self.model, lora, self.is_encoder_decoder)
        self.val_ce = TokenCrossEntropy()
        self.val_bpb = BitsPerByte()

    #: The kinds of model this class takes (a subclass may narrow it).
    _kinds: tuple[str, ...] = ("causal", "seq2seq")

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    @property
    def default_tokenizer(self) -> str | None:
        """The tokenizer that goes with this model: its checkpoint's own, or the byte tokenizer for
        a config-built model with the byte vocabulary (257); None when there is no telling."""
        if self.hparams.model_name_or_path is not None:
            return str(self.hparams.model_name_or_path)
        return BYTES if self.model.get_input_embeddings().num_embeddings == BYTE_VOCAB else None

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @override
    def setup(self, stage: str) -> None:
        """Before any training: the data's token ids must mean something to this model, laid out
        for its kind."""
        dm = self.trainer.datamodule
        _check_vocab(self, dm)
        layout = getattr(dm, "encoder_decoder", None)
        if self.is_encoder_decoder and layout is None and getattr(dm, "vocab_size", None) is not None:
            raise ValueError(
                "packed text blocks are for decoder-only models, and this model is an "
                "encoder-decoder; give it prompt/response pairs (SFTDataModule, data=sft)"
            )
        if layout is not None and bool(layout) != self.is_encoder_decoder:
            kind = "an encoder-decoder" if self.is_encoder_decoder else "a decoder-only"
            raise ValueError(
                f"the data is laid out with encoder_decoder={layout}, but the model is {kind} "
                f"model; leave encoder_decoder=None so the data asks the model"
            )

    @override
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw
    ) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kw).logits

    @override
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        b = unpack_batch(batch)
        loss = self.model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels).loss
        self.log("train_loss", loss, prog_bar=True, batch_size=b.input_ids.size(0))
        return loss

    @override
    def validation_step(self, batch, batch_idx: int) -> None:
        b = unpack_batch(batch)
        if self.is_encoder_decoder:  # the decoder reads the labels shifted right (no loss computed here)
            shifted = self.model.prepare_decoder_input_ids_from_labels(labels=b.labels)
            logits = self(b.input_ids, b.attention_mask, decoder_input_ids=shifted)
        else:
            logits = self(b.input_ids, b.attention_mask)
        nll, tokens = summed_nll(logits, b.labels, shift=not self.is_encoder_decoder)
        n = b.input_ids.size(0)
        self.val_ce.update(nll, tokens)
        self.log("val_loss", self.val_ce, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        if b.num_bytes is not None:
            self.val_bpb.update(nll, b.num_bytes)
            self.log("val_bpb", self.val_bpb, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)

    @override
    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]  # LoRA: the adapters only
        opt = torch.optim.AdamW(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.warmup_steps <= 0:
            return opt
        warm = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class CausalLMModule(LMModule):
    """:class:`LMModule` for decoder-only models: an encoder-decoder checkpoint is refused."""

    _kinds = ("causal",)


def _check_vocab(module: LMModule, dm: Any) -> None:
    """The data's token ids fit the model's embedding, and byte ids go only to a byte-level model."""
    tokenizer, data_vocab = getattr(dm, "tokenizer_name", None), getattr(dm, "vocab_size", None)
    if data_vocab is None:  # not one of our datamodules: the user's own tokenization
        return
    model_vocab = module.model.get_input_embeddings().num_embeddings
    checkpoint = module.hparams.model_name_or_path
    if data_vocab > model_vocab:
        raise ValueError(
            f"the data's tokenizer ({tokenizer!r}) has {data_vocab} token ids but the model's "
            f"embedding has {model_vocab}: ids past it cannot be looked up; tokenize with the "
            "model's own tokenizer (data.tokenizer=null, or its path)"
        )
    if tokenizer == BYTES and checkpoint is not None and model_vocab != data_vocab:
        raise ValueError(
            f"the checkpoint {checkpoint!r} reads the ids of its own tokenizer ({model_vocab} "
            f"tokens), but the data is tokenized byte by byte (data.tokenizer=bytes): byte ids "
            "mean other tokens to it; set data.tokenizer='${model.model_name_or_path}'"
        )


_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _dtype(name: str | None) -> torch.dtype | str | None:
    if name is None or name == "auto":
        return name
    if name not in _DTYPES:
        raise ValueError(f"`dtype` should be one of {[*_DTYPES, 'auto']} or None, got {name!r}")
    return _DTYPES[name]


def _auto_class(config: Any, source: str, kinds: tuple[str, ...]) -> Any:
    """The Auto class that builds ``config``'s model whole, or a ValueError naming why none does."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM
    from transformers.models.auto import modeling_auto as auto

    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    kind, cls = ("seq2seq", AutoModelForSeq2SeqLM) if seq2seq else ("causal", AutoModelForCausalLM)
    names = (
        auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
        if seq2seq
        else auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    )
    what = "an encoder-decoder" if seq2seq else "a decoder-only"
    if kind not in kinds:
        raise ValueError(
            f"{source} is {what} model ({config.model_type}); use LMModule, which loads both kinds"
        )
    if config.model_type not in names:
        raise ValueError(
            f"{source}: {config.model_type!r} is {what} config that {cls.__name__} cannot build; "
            "give a causal or sequence-to-sequence language model"
        )
    heads = {n for v in names.values() for n in ((v,) if isinstance(v, str) else v)}
    saved = list(getattr(config, "architectures", None) or [])
    if saved and not heads.intersection(saved):
        raise ValueError(
            f"{source} was saved as {saved}, which {cls.__name__} would not load whole (its "
            "language-model head would be new); give a checkpoint saved with its LM head"
        )
    return cls


def _load_pretrained(name: str, dtype: Any, trust_remote_code: bool, kinds: tuple[str, ...]):
    from transformers import AutoConfig

    _check_local_path(name)
    config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    cls = _auto_class(config, f"checkpoint {name!r}", kinds)
    kw = {} if dtype is None else {"dtype": dtype}
    model, loading = cls.from_pretrained(
        name, config=config, trust_remote_code=trust_remote_code, output_loading_info=True, **kw
    )
    missing = sorted(loading.get("missing_keys") or [])
    if missing:
        raise ValueError(
            f"checkpoint {name!r} lacks {len(missing)} weight(s) that {cls.__name__} would "
            f"initialise at random (e.g. {missing[:3]}); give a checkpoint saved whole with save_pretrained"
        )
    return model


def _build_from_config(config: dict[str, Any], seed: int, kinds: tuple[str, ...]):
    from transformers import AutoConfig

    cfg = dict(config)
    model_type = cfg.pop("model_type", None)
    if model_type is None:
        raise ValueError("`config` needs a 'model_type' key, e.g. 'gpt2', 'llama' or 't5'")
    built = AutoConfig.for_model(model_type, **cfg)
    cls = _auto_class(built, f"config {model_type!r}", kinds)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return cls.from_config(built)


def _with_lora(model, options: dict[str, Any], seq2seq: bool):
    """``model`` with LoRA adapters from ``peft`` (only they train)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError(
            "`lora=` needs the `peft` package: pip install peft (or lightning-rectlaw[lora])"
        ) from None
    task = "SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM"
    return get_peft_model(model, LoraConfig(task_type=task, **dict(options)))


def _check_local_path(name: str) -> None:
    """A name that can only be a local path (absolute, ``./``, ``~``, or more than one ``/``)
    must exist; a hub id is ``name`` or ``org/name``."""
    looks_local = name.startswith(("/", "./", "../", "~")) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().exists():
        raise FileNotFoundError(
            f"model path {name!r} does not exist; give a directory saved with save_pretrained, "
            "or a hub name like 'gpt2' or 'org/name'"
        )
