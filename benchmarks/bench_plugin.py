"""Overhead of RectifiedLawCallback against the same subset trainings done by hand.

    python benchmarks/bench_plugin.py [--accelerator auto] [--layers 2] [--embd 128]

Both arms fine-tune the same config-built causal LM on the same nested subsets of the built-in
text (same sizes, epochs, batch size) in this process; the hand-written arm uses plain Lightning
(a Trainer per subset, weights reloaded from a snapshot). Prints wall times, the overhead ratio
(target: under 5%) and training tokens/s.
"""

from __future__ import annotations

import argparse
import time
import warnings

import lightning as L
import torch

from lightning_rectlaw import CausalLMModule, NestedSubsetDataModule, RectifiedLawCallback, TextDataModule


def _model(args) -> CausalLMModule:
    cfg = {
        "model_type": "gpt2",
        "n_layer": args.layers,
        "n_embd": args.embd,
        "n_head": 4,
        "vocab_size": 257,
        "n_positions": args.block,
    }
    return CausalLMModule(config=cfg, lr=1e-3)


def _trainer_kw(args) -> dict:
    return dict(
        default_root_dir=args.root,
        max_epochs=getattr(args, "epochs", 1),
        accelerator=args.accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        precision=args.precision,
    )


def by_hand(args, data: L.LightningDataModule, sizes: list[int], make_model=_model) -> float:
    """The subset trainings by hand: a plain Trainer per subset, weights reloaded from a snapshot."""
    model = make_model(args)
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    dm = NestedSubsetDataModule(data, budget=args.budget, min_size=args.min_size)
    dm.setup("fit")
    t0 = time.perf_counter()
    for size in sizes:
        model.load_state_dict(snapshot)
        dm.use_subset(size)
        trainer = L.Trainer(num_sanity_val_steps=0, inference_mode=False, **_trainer_kw(args))
        trainer.fit(model, train_dataloaders=dm.train_dataloader())
        trainer.validate(model, dataloaders=dm.val_dataloader(), verbose=False)
    return time.perf_counter() - t0


def with_callback(args, data: L.LightningDataModule, make_model=_model) -> tuple[float, list[int]]:
    """The same trainings through the callback (every subset), and the sizes it ran."""
    model = make_model(args)
    law = RectifiedLawCallback(schedule="all")
    trainer = L.Trainer(callbacks=[law], **_trainer_kw(args))
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=NestedSubsetDataModule(data, budget=args.budget, min_size=args.min_size))
    return time.perf_counter() - t0, law.result.sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--precision", default="32-true")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--budget", type=int, default=2048)
    ap.add_argument("--min-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import tempfile

    args.root = tempfile.mkdtemp(prefix="bench_plugin_")  # the result file goes here
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = TextDataModule(block_size=args.block, batch_size=32, max_val_blocks=128)
    data.setup("fit")
    with_callback(args, data)  # warm-up (allocator, kernels)
    cb, hand = [], []
    for _ in range(args.repeat):
        t, sizes = with_callback(args, data)
        cb.append(t)
        hand.append(by_hand(args, data, sizes))
    t_cb, t_hand = min(cb), min(hand)
    tokens = sum(sizes) * args.epochs * args.block
    device = "cuda:" + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device {device}; subsets {sizes}; {args.epochs} epoch(s), block {args.block}")
    print(f"by hand (plain Lightning): {t_hand:7.2f} s  ({tokens / t_hand:10.0f} train tokens/s)")
    print(f"RectifiedLawCallback     : {t_cb:7.2f} s  ({tokens / t_cb:10.0f} train tokens/s)")
    print(f"overhead                 : {100 * (t_cb / t_hand - 1):+6.1f} %  (target < 5 %)")


if __name__ == "__main__":
    main()
