"""A candidate's job directory: named by the overrides in which the sweep's jobs differ.

A candidate is what differs between the sweep's jobs (``model=tiny_llama``), not the settings
they share (``rectlaw.budget=1024``): a re-run of the sweep with other shared settings lands in
the same directories, and the resume cache decides what to reuse. The plain sweep names its job
directories through the ``rectlaw_job_dir`` resolver (``hydra.sweep.subdir`` in the shipped
config); the adaptive sweeper calls :func:`candidate_subdir` itself. Both read which keys are swept
from the sweep's ``multirun.yaml``, which Hydra's sweepers write before launching."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from omegaconf import DictConfig, OmegaConf

from lightning_rectlaw.report.collect import override_key, sweep_keys_of

RESOLVER = "rectlaw_job_dir"


def candidate_subdir(overrides: Sequence[str], swept: Collection[str] | None = None) -> str:
    """The job directory of a candidate with these ``overrides``: those of the ``swept`` keys (all
    of them when ``swept`` is ``None`` or names none of them), sorted and joined as Hydra's
    ``override_dirname`` joins them, with path separators and quotes made safe for a file name."""
    mine = [o for o in overrides if swept and override_key(o) in swept] or list(overrides)
    return ",".join(sorted(mine)).translate(str.maketrans("/\\:", "___", "'\""))


def _job_dir(*, _root_: DictConfig) -> str:
    """``${rectlaw_job_dir:}``: this job's directory name within its sweep."""
    hydra = _root_.hydra
    return candidate_subdir(list(hydra.overrides.task), sweep_keys_of(hydra.sweep.dir))


def register_resolver() -> None:
    """Register ``${rectlaw_job_dir:}`` (once per process)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, _job_dir)
