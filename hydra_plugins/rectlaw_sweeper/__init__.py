"""Hydra sweeper plugin of lightning-rectlaw: ``hydra/sweeper=rectlaw``."""
