"""``hydra/launcher=ray_gpus`` (the class is in ``_ray_gpus``). Hydra imports every module of
``hydra_plugins`` when it starts: without the optional Ray launcher this one defines nothing, and
Hydra starts as usual."""

try:
    from hydra_plugins.rectlaw_launchers._ray_gpus import RayGpusLauncher
except ImportError:  # hydra-ray-launcher is not installed (the project's `launchers` extra has it)
    RayGpusLauncher = None

__all__ = ["RayGpusLauncher"]
