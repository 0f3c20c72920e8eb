"""The embedded SFT task: padding in the subset runs' batches, and their speed against a plain fit.

    python benchmarks/bench_sft.py [--budget 512] [--min-size 64] [--accelerator auto]

1. **Padding**: the share of padded positions in the batches of every subset the callback runs
   (the app's settings for ``data=sft``: byte tokenizer, ``max_length`` 256, batch 32),
   length-grouped as ``SFTDataModule`` serves them, against a plain seeded shuffle of the same
   subsets (target: at most 20% grouped).
2. **Speed**: real (unpadded) training tokens per second of ``RectifiedLawCallback``'s subset runs
   against the same trainings by hand, a plain ``Trainer.fit`` per subset on the same loaders from
   the same weights (``bench_plugin.py``'s two arms), in this process, for a decoder-only and an
   encoder-decoder model (target: at least 0.9x).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_plugin  # noqa: E402 - the two arms: the callback, and the same trainings by hand

from lightning_rectlaw import LMModule, NestedSubsetDataModule, SFTDataModule  # noqa: E402

GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 257, "n_positions": 256,
        "bos_token_id": 256, "eos_token_id": 256}  # fmt: skip
T5 = {"model_type": "t5", "num_layers": 1, "d_model": 64, "d_ff": 128, "d_kv": 16, "num_heads": 4,
      "vocab_size": 257, "pad_token_id": 256, "eos_token_id": 256, "decoder_start_token_id": 256}  # fmt: skip


def sft_data(config: dict) -> SFTDataModule:
    """The embedded pairs as the app's ``data=sft`` serves them, laid out for ``config``'s model."""
    sft = SFTDataModule(tokenizer="bytes", encoder_decoder=config is T5, max_length=256, batch_size=32)
    sft.setup("fit")
    return sft


def padding_share(dm: NestedSubsetDataModule, sizes: list[int], grouped: bool) -> float:
    """Padded positions over all positions, in the batches of every subset of ``sizes``."""
    lengths = np.asarray(dm.datamodule.train_set.lengths)
    padded = total = 0
    for size in sizes:
        dm.use_subset(size)
        chosen = lengths[dm.indices(size)]
        if grouped:
            batches = [np.asarray(b) for b in dm.train_dataloader().batch_sampler]
        else:
            order = np.random.default_rng(dm.seed).permutation(size)
            batches = [order[i : i + dm.batch_size] for i in range(0, size, dm.batch_size)]
        for b in batches:
            width = chosen[b].max()
            padded += int(width * len(b) - chosen[b].sum())
            total += int(width * len(b))
    dm.use_subset(None)
    return padded / total


def speed(args, config: dict) -> tuple[float, float, int, list[int]]:
    """Best-of-``args.repeat`` seconds with the callback and by hand, the real train tokens, the sizes."""
    sft = sft_data(config)

    def make_model(_):
        return LMModule(config=config, lr=1e-3)

    bench_plugin.with_callback(args, sft, make_model)  # warm-up (allocator, kernels)
    cb, hand = [], []
    for _ in range(args.repeat):
        t, sizes = bench_plugin.with_callback(args, sft, make_model)
        cb.append(t)
        hand.append(bench_plugin.by_hand(args, sft, sizes, make_model))
    dm = NestedSubsetDataModule(sft, budget=args.budget, min_size=args.min_size)
    dm.setup("fit")
    lengths = np.asarray(sft.train_set.lengths)
    return min(cb), min(hand), sum(int(lengths[dm.indices(s)].sum()) for s in sizes), sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--precision", default="32-true")
    ap.add_argument("--budget", type=int, default=512)
    ap.add_argument("--min-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    args.root = tempfile.mkdtemp(prefix="bench_sft_")
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    sft = sft_data(GPT2)
    dm = NestedSubsetDataModule(sft, budget=args.budget, min_size=args.min_size)
    dm.setup("fit")
    grouped, plain = padding_share(dm, dm.sizes, True), padding_share(dm, dm.sizes, False)
    print(f"embedded SFT task: {len(sft.train_set)} train pairs, subsets {dm.sizes}, batch {dm.batch_size}")
    print(f"padding, length-grouped : {100 * grouped:5.1f} %  (target <= 20 %)")
    print(f"padding, plain shuffle  : {100 * plain:5.1f} %")
    device = "cuda:" + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device {device}, {args.precision}; best of {args.repeat}")
    for name, config in (("GPT-2 2x64", GPT2), ("T5 1+1x64", T5)):
        t_cb, t_hand, tokens, sizes = speed(args, config)
        print(f"{name}: {tokens} real train tokens over subsets {sizes}")
        print(f"  Trainer.fit by hand   : {t_hand:7.2f} s  ({tokens / t_hand:9.0f} tokens/s)")
        print(f"  RectifiedLawCallback  : {t_cb:7.2f} s  ({tokens / t_cb:9.0f} tokens/s)")
        print(f"  speed against by hand : {t_hand / t_cb:5.2f}x  (target >= 0.9x)")


if __name__ == "__main__":
    main()
