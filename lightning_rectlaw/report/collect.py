"""The records of a sweep directory (:func:`collect_results`) and the keys its sweep varies.

No framework at import (PyYAML, which Hydra brings, only to read a job's ``.hydra`` files)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lightning_rectlaw.selection import CANDIDATE_FILE, CandidateRecord, Status
from lightning_rectlaw.selection.record import finished_runs


def collect_results(sweep_dir: str | os.PathLike) -> list[CandidateRecord]:
    """Load every candidate result below ``sweep_dir``, one record per job the sweep started.

    A Hydra job directory (it has ``.hydra/overrides.yaml``) without a result file gives an
    ``incomplete`` record with the subsets its resume cache had finished. Each record carries
    the job's ``overrides``; names shared by several jobs get the overrides that tell them apart.

    Raises:
        FileNotFoundError: the directory does not exist.
        ValueError: no job and no result file was found, or some are corrupt (the message lists them and why).
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep directory {str(root)!r} does not exist")
    files = sorted(root.rglob(CANDIDATE_FILE))
    jobs = sorted(p.parent.parent for p in root.rglob(".hydra/overrides.yaml"))
    unfinished = [j for j in jobs if not (j / CANDIDATE_FILE).exists()]
    if not files and not unfinished:
        raise ValueError(
            f"no {CANDIDATE_FILE} found below {str(root)!r}: is it a sweep directory "
            "of examples/train.py, and did any job start?"
        )
    records, bad = [], []
    for f in files:
        try:
            rec = json.loads(f.read_text())
            if not isinstance(rec, dict) or "name" not in rec or "status" not in rec:
                raise ValueError("missing 'name' or 'status'")
            rec.setdefault("overrides", _job_overrides(f.parent))
            rec["job_dir"] = str(f.parent.relative_to(root))
            records.append(rec)
        except (OSError, ValueError) as err:
            bad.append(f"{f}: {err}")
    if bad:
        raise ValueError(
            "corrupt result file(s); delete them and re-run those jobs (finished "
            "subsets are reused):\n  " + "\n  ".join(bad)
        )
    records += [{**_incomplete(job), "job_dir": str(job.relative_to(root))} for job in unfinished]
    return _distinct_names(_latest_runs(records, root, sweep_keys_of(root)))


def override_key(override: str) -> str:
    """The key an override line sets: ``model`` of ``model=a``, ``trainer.x`` of ``+trainer.x=1``."""
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(overrides: Iterable[str], params: dict[str, Any] | None = None) -> set[str]:
    """The keys a sweep gives more than one value: those swept on its command line
    (``model=a,b``) or in ``hydra.sweeper.params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [*overrides, *(f"{k}={v}" for k, v in (params or {}).items())]
    return {
        o.get_key_element() for o in OverridesParser.create().parse_overrides(lines) if o.is_sweep_override()
    }


def sweep_keys_of(sweep_dir: str | os.PathLike) -> set[str] | None:
    """The swept keys of the (latest) sweep in ``sweep_dir``, from the ``multirun.yaml`` Hydra's
    sweepers write before launching; ``None`` without one."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.exists():
        return None
    import yaml

    hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra") or {}
    return swept_keys(
        (hydra.get("overrides") or {}).get("task") or [], (hydra.get("sweeper") or {}).get("params")
    )


def _latest_runs(records: list[CandidateRecord], root: Path, swept: set[str] | None) -> list[CandidateRecord]:
    """One record per candidate: runs of one candidate (its name and swept overrides) in several
    job directories, as an earlier naming of them left, are never ranked against each other; the
    latest is kept and lists the others as ``replaced``."""
    if not swept:
        return records
    groups: dict[tuple, list[CandidateRecord]] = {}
    for r in records:
        mine = sorted(o for o in r.get("overrides") or [] if override_key(o) in swept)
        groups.setdefault((r["name"], *mine), []).append(r)
    kept = {}
    for group in groups.values():
        group.sort(key=lambda r: _written_at(root / r["job_dir"]))
        *earlier, latest = group
        if earlier:
            latest = {**latest, "replaced": [r["job_dir"] for r in earlier]}
        kept[latest["job_dir"]] = latest
    return [kept[r["job_dir"]] for r in records if r["job_dir"] in kept]


def _written_at(job_dir: Path) -> float:
    """When a job wrote its result (when its directory last changed, for one that did not)."""
    result = job_dir / CANDIDATE_FILE
    return (result if result.exists() else job_dir).stat().st_mtime


def _hydra_yaml(job_dir: Path, name: str) -> Any:
    """A job's ``.hydra/<name>.yaml``, read; ``None`` when it is missing or empty."""
    path = job_dir / ".hydra" / f"{name}.yaml"
    if not path.exists():
        return None
    import yaml

    return yaml.safe_load(path.read_text())


def _job_overrides(job_dir: Path) -> list[str]:
    return [str(o) for o in (_hydra_yaml(job_dir, "overrides") or [])]


def _incomplete(job_dir: Path) -> CandidateRecord:
    """The record of a job that never wrote its result: named as the app names it, with the
    subsets its resume cache had finished."""
    config = _hydra_yaml(job_dir, "config") or {}
    choices = (_hydra_yaml(job_dir, "hydra") or {}).get("hydra", {}).get("runtime", {}).get("choices", {})
    name = (config.get("model") or {}).get("model_name_or_path") or choices.get("model") or job_dir.name
    done = finished_runs(job_dir / "rectlaw")
    sizes = sorted((s for s in done if s > 0), reverse=True)
    return {
        "name": str(name),
        "status": Status.INCOMPLETE.because(
            f"the job did not finish (killed, or still running); {len(sizes)} subset(s) measured"
        ),
        "sizes": sizes,
        "losses": [done[s] for s in sizes],
        "zero_shot_loss": done.get(0),
        "overrides": _job_overrides(job_dir),
    }


def _distinct_names(records: list[CandidateRecord]) -> list[CandidateRecord]:
    """Records sharing a name get ``name [overrides in which they differ]``."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_name.setdefault(r["name"], []).append(r)
    for name, group in by_name.items():
        if len(group) < 2:
            continue
        common = set.intersection(*(set(r.get("overrides") or []) for r in group))
        for i, r in enumerate(group):
            differing = [o for o in (r.get("overrides") or []) if o not in common]
            r["name"] = f"{name} [{', '.join(differing) or f'job {i + 1}'}]"
    return records
