"""The Hydra app: the typed ``rectlaw`` config schema, one job per candidate, the sweep entry
point (``rectlaw sweep``, ``examples/train.py``), the end-of-sweep summary callback, the adaptive
sweeper's logic (registered by ``hydra_plugins/rectlaw_sweeper``) and the shipped configs
(``conf/``). The top layer: it may import every other."""
