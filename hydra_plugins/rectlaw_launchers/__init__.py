"""Launchers of lightning-rectlaw: ``hydra/launcher=ray_gpus``."""
