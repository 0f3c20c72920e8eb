"""Sweep candidate models with the rectified-law plugin and write a selection summary.

The same app as ``rectlaw sweep`` (``lightning_rectlaw/sweep.py``), from a checkout:

python examples/train.py -m                          # the embedded 3-candidate CPU demo
python examples/train.py -m model=tiny_gpt2,small_gpt2 trainer=gpu
python examples/train.py -m hydra/launcher=local_parallel
"""

import sys

from lightning_rectlaw.app.sweep import run

if __name__ == "__main__":
    sys.exit(run())
