"""Command-line costs: start-up, `rectlaw select` at scale, and `rectlaw summarize` without torch.

    python benchmarks/bench_cli.py [--candidates 10000]

- ``rectlaw --help``: wall time of a fresh process, against a bare ``python -c pass`` (target
  <= 0.4 s on top of the interpreter's own start).
- ``rectlaw select`` on a synthetic table of ``--candidates`` rows: the CLI process (read, select,
  print) against the library call (``select``) on the same table in this process, and the CLI at
  a tenth of the candidates, so its cost is seen to grow linearly (ratio ~10x for 10x the rows).
- ``rectlaw summarize`` on a synthetic two-candidate sweep: whether it imported torch, and its time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lightning_rectlaw import LossTable, select


def _wall(cmd: list[str], repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def _table(n: int, seed: int = 0) -> LossTable:
    rng = np.random.default_rng(seed)
    sizes = 200.0 * 2.0 ** np.arange(12)
    scale = rng.uniform(0.8, 1.2, (n, 1))
    dl = rng.uniform(10, 2000, (n, 1))
    losses = scale * (40.0 / (dl + sizes ** rng.uniform(0.3, 0.6, (n, 1))) + 1.0)
    noisy = losses * rng.uniform(0.995, 1.005, losses.shape)
    return LossTable(tuple(f"m{i}" for i in range(n)), sizes, noisy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=10_000)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t_py = _wall([py, "-c", "pass"])
        t_help = _wall([py, "-m", "lightning_rectlaw", "--help"])
        print(
            f"rectlaw --help        : {t_help:6.2f} s  (python -c pass {t_py:.2f} s; "
            f"rectlaw's own {t_help - t_py:.2f} s, target <= 0.4 s)"
        )

        n = args.candidates
        big, small = tmp / "big.csv", tmp / "small.csv"
        table = _table(n)
        table.write_csv(big)
        _table(n // 10).write_csv(small)
        t0 = time.perf_counter()
        select(LossTable.read_csv(big), budget="1/8")
        t_lib = time.perf_counter() - t0
        cmd = [py, "-m", "lightning_rectlaw", "select", "--budget", "1/8", "--format", "csv"]
        t_cli = _wall([*cmd, str(big)], 1)
        t_cli_small = _wall([*cmd, str(small)], 1)
        print(
            f"select, {n} candidates: CLI {t_cli:6.2f} s, library (read + select) {t_lib:6.2f} s: "
            f"CLI/library x{t_cli / t_lib:.2f}"
        )
        print(
            f"select, {n // 10} candidates: CLI {t_cli_small:6.2f} s: "
            f"10x the candidates cost x{t_cli / t_cli_small:.1f}"
        )

        sweep = tmp / "sweep"
        for name, scale in (("a", 1.0), ("b", 1.1)):
            sizes = [6400, 3200, 1600, 800, 400, 200]
            rec = {
                "name": name,
                "status": "ok",
                "sizes": sizes,
                "losses": [scale * (40 / (100 + s**0.4) + 1) for s in sizes],
                "method": "robust_ats",
                "options": {},
                "target_size": 51200,
                "predicted_loss": scale,
            }
            (sweep / name).mkdir(parents=True)
            (sweep / name / "candidate.json").write_text(json.dumps(rec))
        code = (
            "import json, sys, time; t0 = time.perf_counter(); from lightning_rectlaw.cli import main; "
            "main(['summarize', sys.argv[1]]); "
            "print(json.dumps([time.perf_counter() - t0, 'torch' in sys.modules]))"
        )
        out = subprocess.run([py, "-c", code, str(sweep)], capture_output=True, text=True, check=True)
        seconds, torch_loaded = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"rectlaw summarize     : {seconds:6.2f} s in-process; imported torch: {torch_loaded}")


if __name__ == "__main__":
    main()
