"""The prepared GPU check: one run on a GPU machine, one markdown block of figures.

    python benchmarks/gpu_check.py [--out gpu_check.md]      # on the GPU machine, < 5 minutes
    python benchmarks/gpu_check.py --cpu                     # the same parts, tiny, on CPU (a test)

It measures, naming the device:

1. the plugin's overhead in ``bf16-mixed`` against the same subset trainings by hand
   (``benchmarks/bench_plugin.py``'s two arms, best of two; the target is at most +5%);
2. the demo sweep on ``trainer=gpu`` (its wall time and its choice);
3. with two or more GPUs, a ``hydra/launcher=ray_gpus`` sweep of one candidate per GPU: the
   devices each candidate was given (skipped, saying so, on one GPU);
4. a mixed sweep on the embedded SFT task (``data=sft``, bf16-mixed): a causal and an
   encoder-decoder candidate built from configs (``model=tiny_gpt2,tiny_t5``), its wall time and
   choice, and each kind's real training tokens per second in the subset runs against the same
   fine-tunes in a plain ``Trainer.fit`` (``benchmarks/bench_sft.py``'s arms; target at least 0.9x).

A GPU machine may come with its own Python and torch and without Hydra or Ray: each part says
what it misses and is skipped, the others run.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TINY = ["data.block_size=16", "data.max_val_blocks=32", "rectlaw.budget=256", "rectlaw.min_size=32"]
TINY += ["trainer.max_epochs=1", "+trainer.enable_progress_bar=false"]
TINY_SFT = ["data.max_val_examples=32", "rectlaw.budget=128", "rectlaw.min_size=32"]
TINY_SFT += ["trainer.max_epochs=1", "+trainer.enable_progress_bar=false"]


def missing(*modules: str) -> list[str]:
    """The modules of ``modules`` this Python cannot import."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def device_name() -> tuple[str, int]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0), torch.cuda.device_count()
    return f"CPU ({platform.processor() or platform.machine()})", 0


def overhead(cpu: bool) -> str:
    """Part 1: the callback against the same trainings by hand, in bf16-mixed."""
    lacking = missing("torch", "lightning", "transformers", "lightning_rectlaw")
    if lacking:
        return f"skipped: this Python lacks {', '.join(lacking)} (pip install -e .)"
    sys.path.insert(0, str(HERE))
    import bench_plugin

    args = argparse.Namespace(
        accelerator="cpu" if cpu else "gpu",
        precision="bf16-mixed",
        layers=2 if cpu else 6,
        embd=32 if cpu else 512,
        block=32 if cpu else 256,
        budget=256 if cpu else 8192,
        min_size=64 if cpu else 512,
        epochs=1,
        root=tempfile.mkdtemp(prefix="gpu_check_"),
    )
    data = bench_plugin.TextDataModule(block_size=args.block, batch_size=32, max_val_blocks=64)
    data.setup("fit")
    bench_plugin.with_callback(args, data)  # warm-up (allocator, kernels)
    hand, cb = [], []
    for _ in range(2):
        t, sizes = bench_plugin.with_callback(args, data)
        cb.append(t)
        hand.append(bench_plugin.by_hand(args, data, sizes))
    ratio = min(cb) / min(hand) - 1
    return (
        f"{100 * ratio:+.1f}% (callback {min(cb):.2f} s, by hand {min(hand):.2f} s, best of 2; subsets "
        f"{sizes}; GPT-2 {args.layers} layers x {args.embd}, block {args.block}; target at most +5%)"
    )


def app_sweep(overrides: list[str], out: Path) -> str:
    """Run ``rectlaw sweep -m OVERRIDES``: its seconds and its choice, or how it failed."""
    cmd = [sys.executable, "-m", "lightning_rectlaw", "sweep", "-m", *overrides, f"hydra.sweep.dir={out}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:  # the sweep's last line says why; else the end of its stderr
        why = (proc.stdout.strip().splitlines() or [proc.stderr.strip()[-300:]])[-1]
        return f"failed after {seconds:.0f} s (exit {proc.returncode}): {why}"
    chose = next((line for line in proc.stdout.splitlines() if "chose " in line), "")
    return f"{seconds:.0f} s; `{' '.join(overrides)}`; {chose[chose.find('chose ') :].split('; summary')[0]}"


def demo_sweep(cpu: bool, out: Path) -> str:
    """Part 2: the demo sweep on ``trainer=gpu`` (tiny, on ``trainer=cpu``, with ``--cpu``)."""
    lacking = missing("hydra", "lightning_rectlaw")
    if lacking:
        return f"skipped: this Python lacks {', '.join(lacking)} (pip install -e .)"
    return app_sweep(["trainer=cpu", *TINY] if cpu else ["trainer=gpu"], out)


def ray_sweep(gpus: int, out: Path) -> str:
    """Part 3: one candidate per GPU through ``hydra/launcher=ray_gpus``."""
    if gpus < 2:
        return f"skipped: {gpus} GPU(s) here; packing candidates across GPUs needs two or more"
    lacking = missing("hydra", "ray", "hydra_plugins.hydra_ray_launcher")
    if lacking:
        return f"skipped: this Python lacks {', '.join(lacking)} (pip install -e '.[launchers]')"
    models = ",".join(["tiny_gpt2", "tiny_llama", "small_gpt2"][: min(gpus, 3)])
    cmd = [sys.executable, "-m", "lightning_rectlaw", "sweep", "-m", f"model={models}", *TINY]
    cmd += ["trainer=gpu", "hydra/launcher=ray_gpus", f"hydra.sweep.dir={out}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        return f"failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    rows = list(csv.DictReader((out / "selection_summary.csv").open()))
    placed = ", ".join(f"{r['candidate']} on {r.get('visible_devices') or '?'}" for r in rows)
    return f"{time.perf_counter() - t0:.0f} s for {len(rows)} candidates: {placed}"


def mixed_sft(cpu: bool, out: Path) -> str:
    """Part 4: a causal and an encoder-decoder candidate on ``data=sft``, in bf16-mixed."""
    lacking = missing("hydra", "transformers", "lightning_rectlaw")
    if lacking:
        return f"skipped: this Python lacks {', '.join(lacking)} (pip install -e .)"
    trainer = ["trainer=cpu", *TINY_SFT] if cpu else ["trainer=gpu"]
    swept = app_sweep(["model=tiny_gpt2,tiny_t5", "data=sft", *trainer, "trainer.precision=bf16-mixed"], out)
    if swept.startswith("failed"):
        return swept
    sys.path.insert(0, str(HERE))
    import bench_sft

    args = argparse.Namespace(
        accelerator="cpu" if cpu else "gpu", precision="bf16-mixed", repeat=1 if cpu else 2,
        root=tempfile.mkdtemp(), budget=128 if cpu else 2048, min_size=32 if cpu else 128,
    )  # fmt: skip
    speeds = []
    for name, config in (("GPT-2", bench_sft.GPT2), ("T5", bench_sft.T5)):
        t_cb, t_hand, tokens, _ = bench_sft.speed(args, config)
        speeds.append(f"{name} {tokens / t_cb:.0f} tokens/s, {t_hand / t_cb:.2f}x of Trainer.fit by hand")
    return f"{swept}; subset runs: {'; '.join(speeds)} (target at least 0.9x)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="the same parts, tiny, on CPU (no GPU needed)")
    ap.add_argument("--out", type=Path, help="also write the markdown block to this file")
    args = ap.parse_args(argv)
    if missing("torch"):
        print("gpu_check: this Python has no torch; install the project first (pip install -e .)")
        return 2
    name, gpus = device_name()
    if not gpus and not args.cpu:
        print("gpu_check: no CUDA device here; run with --cpu for the CPU parts only")
        return 2
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    command = "python benchmarks/gpu_check.py" + (" --cpu" if args.cpu else "")
    block = [
        f"### GPU check, {date.today().isoformat()}: {name}" + (f" x {gpus}" if gpus > 1 else ""),
        "",
        f"`{command}` (torch {__import__('torch').__version__}, Python {platform.python_version()})",
        "",
        f"- plugin overhead, bf16-mixed: {overhead(args.cpu)}",
        f"- demo sweep: {demo_sweep(args.cpu, work / 'demo')}",
        f"- ray_gpus sweep: {ray_sweep(gpus, work / 'ray')}",
        f"- mixed SFT sweep, bf16-mixed: {mixed_sft(args.cpu, work / 'mixed')}",
    ]
    text = "\n".join(block) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
