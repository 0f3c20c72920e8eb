"""Sweep candidate models with the rectified-law plugin and write a selection summary.

python examples/train.py -m                          # the embedded 3-candidate CPU demo
python examples/train.py -m model=tiny_gpt2,small_gpt2 trainer=gpu
python examples/train.py -m hydra/launcher=local_parallel
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lightning_rectlaw.app import build_callback, exit_code, mark_failed, run_candidate


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    hc = HydraConfig.get()
    law = build_callback(cfg, f"{hc.runtime.output_dir}/rectlaw")  # bad values fail here, first
    name = cfg.model.get("model_name_or_path") or hc.runtime.choices["model"]
    record = run_candidate(cfg, hc.runtime.output_dir, name, law)
    if hc.mode != RunMode.MULTIRUN and record["status"] != "ok":
        mark_failed()  # a sweep decides at its end, from all its candidates
    return record


if __name__ == "__main__":
    main()
    sys.exit(exit_code())
