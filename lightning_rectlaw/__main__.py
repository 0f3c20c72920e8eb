"""``python -m lightning_rectlaw`` runs the ``rectlaw`` command line."""

import sys

from lightning_rectlaw.cli import main

sys.exit(main())
