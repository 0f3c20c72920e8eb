"""The sweep app: one Hydra job per candidate, a selection summary when the multirun ends.

    rectlaw sweep -m                                  # the embedded 3-candidate CPU demo
    rectlaw sweep -m model=tiny_gpt2,small_gpt2 trainer=gpu
    rectlaw sweep -m --config-dir my_conf model=my_a,my_b    # your own config groups
    python examples/train.py -m ...                   # the same app, from a checkout

The configs ship inside the package (``lightning_rectlaw/app/conf``); ``--config-dir DIR`` (or
``hydra.searchpath``) adds yours, e.g. ``DIR/model/my_a.yaml``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lightning_rectlaw.app.job import candidate_name, exit_code, mark_failed, run_candidate
from lightning_rectlaw.selection import Status


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    """One job: one candidate through the plugin; ``candidate.json`` in the job's directory."""
    hc = HydraConfig.get()
    name = candidate_name(cfg, hc.runtime.choices)
    lines = cfg.rectlaw.progress == "auto" and side_by_side(hc)
    extra = {"progress": "lines"} if lines else {}
    record = run_candidate(cfg, hc.runtime.output_dir, name, **extra)
    if hc.mode != RunMode.MULTIRUN and record["status"] != Status.OK:
        mark_failed()  # a sweep decides at its end, from all its candidates
    return record


def side_by_side(hc: Any) -> bool:
    """Whether the launcher runs this sweep's jobs at the same time with one terminal (joblib's
    ``n_jobs`` other than 1; Ray, which forwards every worker's output to the driver): their live
    bars would draw over each other, so each job logs a line per subset instead. Slurm/submitit
    jobs write to their own log files."""
    if hc.mode != RunMode.MULTIRUN:
        return False
    n_jobs = hc.launcher.get("n_jobs")
    return (n_jobs is not None and n_jobs != 1) or "ray" in str(hc.launcher.get("_target_", "")).lower()


def run(argv: Sequence[str] | None = None, prog: str = "rectlaw sweep") -> int:
    """Run the app with Hydra's command line ``argv`` (default: the process's); the exit status."""
    if argv is not None:
        sys.argv = [prog, *argv]
    main()
    return exit_code()


if __name__ == "__main__":
    sys.exit(run())
