"""The sweep app's Hydra configs (a package, so Hydra finds them in an installed wheel)."""
