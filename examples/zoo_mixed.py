"""zoo-mixed: candidates whose tokenizers and architectures differ (``make_zoo.py --zoo mixed``).

Every candidate is a directory saved with ``save_pretrained``, model and tokenizer, loaded by the
app exactly as a hub checkpoint (``model=hf model.model_name_or_path=<dir>``), nothing downloaded:

* **Architectures**: decoder-only GPT-2 and Llama, encoder-decoder T5 and BART, of two sizes.
* **Tokenizers**: each candidate has its own byte-level BPE, trained with the ``tokenizers``
  library on the pretraining text (below) with 512 to 4,096 tokens, with the special tokens its
  architecture expects (GPT-2 ``<|endoftext|>``; Llama a ``<s>`` before a text; T5 ``</s>`` after
  it; BART ``<s> ... </s>`` around it); one T5 reads UTF-8 bytes (``ByT5Tokenizer``).
* **Pretraining**: 0 to a few hundred steps (batch 32) on Python's own text: the top-level
  standard-library modules the fine-tuning pairs are *not* read from, and the English help texts
  (``pydoc_data.topics``), cut into pieces of 256 characters. One piece is one example, a pair:
  its first 128 characters -> the next 128. A decoder-only model learns the whole piece as plain
  text (``train_on_prompt``); an encoder-decoder reads the first half and learns to write the
  second. The same pieces, in the same order, for every candidate.
* **Fine-tuning**: the embedded supervised pairs ``stdlib_docs`` (a standard-library signature ->
  the first paragraph of its docstring), a seeded fixed validation set of :data:`VAL_PAIRS` pairs
  and the rest for training, as ``prompt``/``completion`` JSON lines (``data=sft``). One example
  is one pair whatever the tokenizer, and the loss is ``val_bpb`` (bits per UTF-8 byte of the
  responses), so losses compare across tokenizers.

The loss table, the selectors' scores and the curves' plot are written by ``make_zoo.py``'s
``write_truth``, as for the other zoos.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIECE = 256  # characters per pretraining example: the first half -> the second half
MAX_LENGTH = 256  # tokens per example, pretraining and fine-tuning (positions of the models)
VAL_PAIRS = 128  # the fixed validation set, in pairs
BYTES = 0  # a spec's vocabulary size meaning "UTF-8 bytes" (ByT5Tokenizer)

#: The architectures, by size: transformers config options (vocabulary and special ids are added).
ARCHS = {
    ("gpt2", "s"): {"n_layer": 2, "n_embd": 128, "n_head": 4, "n_positions": MAX_LENGTH},
    ("gpt2", "m"): {"n_layer": 4, "n_embd": 192, "n_head": 6, "n_positions": MAX_LENGTH},
    ("llama", "s"): {
        "num_hidden_layers": 2,
        "hidden_size": 128,
        "intermediate_size": 344,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": MAX_LENGTH,
    },
    ("t5", "s"): {"d_model": 128, "d_ff": 256, "d_kv": 32, "num_layers": 2, "num_heads": 4},
    ("t5", "m"): {"d_model": 192, "d_ff": 384, "d_kv": 32, "num_layers": 3, "num_heads": 6},
    ("bart", "s"): {
        "d_model": 128,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 256,
        "decoder_ffn_dim": 256,
        "max_position_embeddings": MAX_LENGTH,
    },
}


@dataclass(frozen=True)
class MixedSpec:
    """One candidate: architecture and size, its tokenizer's vocabulary (:data:`BYTES`: bytes) and
    its pretraining steps (batch 32 pieces of :data:`PIECE` characters)."""

    name: str
    arch: str
    size: str
    vocab: int
    steps: int
    seed: int = 0


SPECS = (
    MixedSpec("gpt2-s-bpe1k-long", "gpt2", "s", 1024, 600),
    MixedSpec("gpt2-m-bpe4k-short", "gpt2", "m", 4096, 80),
    MixedSpec("llama-s-bpe2k-mid", "llama", "s", 2048, 250),
    MixedSpec("t5-s-bpe2k-long", "t5", "s", 2048, 600),
    MixedSpec("t5-s-bytes-mid", "t5", "s", BYTES, 150),
    MixedSpec("t5-m-bpe1k-short", "t5", "m", 1024, 60),
    MixedSpec("bart-s-bpe512-mid", "bart", "s", 512, 250),
    MixedSpec("bart-s-bpe4k-control", "bart", "s", 4096, 0),
)
TARGET, MIN_SIZE, RATIOS = 2048, 8, "4,8,16,32"


# --- text --------------------------------------------------------------------------------------


def _pair_modules() -> set[str]:
    """Top-level names of the modules the fine-tuning pairs are read from."""
    from lightning_rectlaw.hf.embedded import builtin_pairs

    return {p["prompt"].removeprefix("def ").split("(")[0].split(".")[0] for p in builtin_pairs()}


@functools.cache
def pretraining_texts() -> tuple[str, ...]:
    """The standard library's top-level modules that no fine-tuning pair is read from (sorted), then
    Python's English help texts."""
    from lightning_rectlaw.hf.embedded import builtin_text

    skip = _pair_modules()
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    source = [f.read_text(encoding="utf-8") for f in files if f.stem not in skip]
    return (*source, *builtin_text("pydoc_topics"))


def pretraining_file(out: Path) -> Path:
    """The pretraining pieces as prompt/completion JSON lines (written once per Python version)."""
    path = out / "_text" / f"pretrain_{sys.version_info[0]}.{sys.version_info[1]}.jsonl"
    if path.exists():
        return path
    half = PIECE // 2
    rows = [
        {"prompt": doc[i : i + half], "completion": doc[i + half : i + PIECE]}
        for doc in pretraining_texts()
        for i in range(0, len(doc) - PIECE + 1, PIECE)
    ]
    rows = [r for r in rows if r["prompt"].strip() and r["completion"].strip()]
    _write_jsonl(path, rows)
    return path


def sft_files(out: Path, seed: int = 0) -> tuple[Path, Path]:
    """The embedded ``stdlib_docs`` pairs: a seeded fixed validation set of :data:`VAL_PAIRS` pairs
    and the rest for training (in their own order; the subsets are drawn by the app)."""
    import numpy as np

    from lightning_rectlaw.hf.embedded import builtin_pairs

    pairs = builtin_pairs("stdlib_docs")
    val_idx = set(np.random.default_rng(seed).permutation(len(pairs))[:VAL_PAIRS].tolist())
    train = out / "_text" / "stdlib_docs_train.jsonl"
    val = out / "_text" / "stdlib_docs_val.jsonl"
    _write_jsonl(train, [p for i, p in enumerate(pairs) if i not in val_idx])
    _write_jsonl(val, [p for i, p in enumerate(pairs) if i in val_idx])
    return train, val


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """``rows`` as JSON lines, rewritten only when they differ (a cached sweep keeps its files)."""
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# --- tokenizers and models -----------------------------------------------------------------------

#: Per architecture: the special tokens (the first is the end token) and what the tokenizer puts
#: around a text itself (``$A``: the text).
SPECIALS = {
    "gpt2": (["<|endoftext|>"], None),
    "llama": (["</s>", "<s>"], "<s> $A"),
    "t5": (["</s>", "<pad>"], "$A </s>"),
    "bart": (["</s>", "<s>", "<pad>"], "<s> $A </s>"),
}


def make_tokenizer(arch: str, vocab: int):
    """A byte-level BPE of ``vocab`` tokens trained on :func:`pretraining_texts`, with ``arch``'s
    special tokens; ``vocab`` = :data:`BYTES`: T5's byte tokenizer (``ByT5Tokenizer``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ByT5Tokenizer, PreTrainedTokenizerFast

    if vocab == BYTES:
        if arch != "t5":
            raise ValueError(f"byte tokenizer only for t5 here, got {arch!r}")
        return ByT5Tokenizer(extra_ids=0)
    specials, wrap = SPECIALS[arch]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(pretraining_texts(), trainer=trainer)
    if wrap is not None:
        used = [t for t in wrap.split() if t != "$A"]
        tok.post_processor = processors.TemplateProcessing(
            single=wrap, special_tokens=[(t, tok.token_to_id(t)) for t in used]
        )
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=specials[0])
    if arch == "gpt2":
        hf.bos_token = specials[0]
    else:
        hf.bos_token = "<s>" if "<s>" in specials else None
        hf.pad_token = "<pad>" if "<pad>" in specials else None
    return hf


def model_config(spec: MixedSpec, tok) -> dict:
    """The candidate's transformers config: its architecture and size, its tokenizer's ids."""
    config = {"model_type": spec.arch, **ARCHS[(spec.arch, spec.size)], "vocab_size": len(tok)}
    config["eos_token_id"] = tok.eos_token_id
    if spec.arch == "gpt2":
        config["bos_token_id"] = tok.eos_token_id
    elif spec.arch == "llama":
        config |= {"bos_token_id": tok.bos_token_id, "pad_token_id": tok.eos_token_id}
    elif spec.arch == "t5":
        config |= {"pad_token_id": tok.pad_token_id, "decoder_start_token_id": tok.pad_token_id}
    else:  # bart
        config |= {"bos_token_id": tok.bos_token_id, "pad_token_id": tok.pad_token_id}
        config |= {"decoder_start_token_id": tok.eos_token_id, "forced_eos_token_id": None}
    return config


def pretrain(module, data, steps: int, seed: int, accelerator: str, progress: bool = False) -> None:
    """Pretrain ``module`` on ``data`` for ``steps`` steps from ``seed``, one device, nothing logged
    or saved (both zoos' candidates are pretrained so)."""
    import lightning as L

    L.seed_everything(seed, verbose=False)
    L.Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
    ).fit(module, datamodule=data)


def build(spec: MixedSpec, out: Path, scale: float, accelerator: str) -> Path:
    """Train the candidate's tokenizer, pretrain it (or reuse both) and save it under ``out/<name>``."""
    from lightning_rectlaw.hf.model import LMModule
    from lightning_rectlaw.hf.pairs import SFTDataModule

    path = out / spec.name
    steps = round(spec.steps * scale)
    record = {**asdict(spec), "steps": steps, "piece": PIECE, "max_length": MAX_LENGTH}
    meta = path / "zoo_spec.json"
    if meta.exists() and json.loads(meta.read_text()).get("spec") == record:
        print(f"[zoo] {spec.name}: cached")
        return path
    t0 = time.perf_counter()
    tok = make_tokenizer(spec.arch, spec.vocab)
    tok.save_pretrained(path)  # first: the pretraining data reads it from here
    module = LMModule(config=model_config(spec, tok), lr=1e-3, warmup_steps=min(50, steps), seed=spec.seed)
    if steps > 0:
        data = SFTDataModule(
            [str(pretraining_file(out))],
            tokenizer=str(path),
            max_length=MAX_LENGTH,
            train_on_prompt=True,
            batch_size=32,
            val_fraction=0.01,
            seed=spec.seed,
        )
        pretrain(module, data, steps, spec.seed, accelerator)
    module.model.save_pretrained(path)
    seconds = time.perf_counter() - t0
    meta.write_text(json.dumps({"spec": record, "pretrain_seconds": seconds, "params": module.num_params}))
    what = f"{module.num_params:,} parameters, {len(tok)} tokens, {steps} steps"
    print(f"[zoo] {spec.name}: {what}, {seconds:.0f} s")
    return path


# --- ground truth ----------------------------------------------------------------------------------


def ground_truth(
    specs: list[MixedSpec], out: Path, target: int, min_size: int, epochs: int, accelerator: str
) -> tuple[Path, float]:
    """Fine-tune every candidate on every nested subset of the pairs up to ``target`` with the Hydra
    app (zero-shot included, ``val_bpb``); the sweep directory and its wall time."""
    train, val = sft_files(out)
    sweep = out / f"truth_sweep_t{target}_m{min_size}_e{epochs}"  # re-running resumes it
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "train.py"),
        "-m",
        "model=hf",
        "model.model_name_or_path=" + ",".join(str(out / s.name) for s in specs),
        "model.lr=1e-3",
        "data=sft",
        f"data.files=[{train}]",
        f"data.val_files=[{val}]",
        f"data.max_length={MAX_LENGTH}",
        f"data.max_val_examples={VAL_PAIRS}",
        f"rectlaw.budget={target}",
        f"rectlaw.target_size={target}",
        f"rectlaw.min_size={min_size}",
        "rectlaw.schedule=all",
        "rectlaw.zero_shot=true",
        "rectlaw.monitor=val_bpb",
        f"trainer.max_epochs={epochs}",
        f"trainer.accelerator={accelerator}",
        f"hydra.sweep.dir={sweep}",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=out)
    return sweep, time.perf_counter() - t0
