"""`RectifiedLawResult`: what the callback measured and predicted for one candidate (a plain record)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np

from lightning_rectlaw.core.presentation.formatting import format_number
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection.registry import DEFAULT_METHOD
from lightning_rectlaw.selection.scores import bounded
from lightning_rectlaw.selection.status import Status

#: The callback's result file, in its ``results_dir``.
RESULT_FILE = "rectlaw_result.json"
#: Each sweep job's record, in its job directory; the app writes it also when the job fails.
CANDIDATE_FILE = "candidate.json"
#: The resume cache's directory under a callback's ``results_dir``: one ``size_<n>.json`` a run.
RUNS_DIR = "rectlaw_runs"


def finished_runs(results_dir: str | Path) -> dict[int, float]:
    """Size -> loss of every run finished under a callback's ``results_dir`` (what a killed job
    had measured), whatever its fingerprint; unreadable files are skipped."""
    done = {}
    for f in (Path(results_dir) / RUNS_DIR).glob("size_*.json"):
        try:
            run = json.loads(f.read_text())
            done[int(run["size"])] = float(run["loss"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return done


#: The loss every tokenizer shares: bits per UTF-8 byte of the target text, which the shipped
#: Hugging Face modules log beside the per-token ``val_loss``.
BITS_PER_BYTE = "val_bpb"


@dataclass(kw_only=True)
class RectifiedLawResult:
    """What the callback measured and predicted for one candidate.

    Attributes:
        sizes, losses: subset sizes run (largest first) and their test losses (failed runs
            excluded; see ``failed``).
        zero_shot_loss: loss before fine-tuning, when measured.
        failed: subset size → reason, for runs that diverged (non-finite loss).
        outliers: subset size → reason, for finished runs the method left out as diverged
            (far above the zero-shot loss) or far off the curve; they stay in ``sizes``/``losses``.
        method, options: the selector used for the prediction and its options.
        target_size: the full fine-tuning set size predicted for.
        predicted_loss, interval: predicted test loss at ``target_size`` and its interval.
        prediction_curve: the method's own curve (``sizes``, ``losses``) up to the target: the
            prediction is its last point. ``None`` for methods without a curve.
        law, vanilla_law: rectified and vanilla laws fitted to the clean points, for reference
            (``None`` with too few).
        examples_processed: training examples seen across subset runs (size × epochs).
        seconds: wall time of the subset runs (a reused run counts its original time).
        reused: subset runs taken from the resume cache instead of trained.
        device, visible_devices: where the subset runs ran: the device kind and index, and the
            job's ``CUDA_VISIBLE_DEVICES`` as it saw it (or the Trainer's device ids when unset).
        validation_data: a hash of the validation batches (with ``results_dir``): candidates
            scored on other data (another tokenizer, another dataset) have another one.
        monitor: the metric the losses are, as resolved (``monitor="auto"`` gives ``val_bpb``
            or ``val_loss``); ``None`` in files written before it was recorded.
        tokenizer: the datamodule's ``tokenizer_info`` (``{"name": ..., "sha256": ...}``, the
            hash over the whole tokenizer), or ``None`` when the datamodule does not say.
        status: ``Status.OK``, ``Status.PENDING`` before the runs, or why no prediction could
            be made (the result file writes ``ok``, ``pending`` or the why)."""

    sizes: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    zero_shot_loss: float | None = None
    failed: dict[int, str] = field(default_factory=dict)
    outliers: dict[int, str] = field(default_factory=dict)
    method: str = DEFAULT_METHOD
    options: dict[str, Any] = field(default_factory=dict)
    target_size: int = 0
    predicted_loss: float | None = None
    interval: tuple[float, float] | None = None
    interval_level: float = 0.95
    prediction_curve: dict[str, list[float]] | None = None
    law: dict[str, float] | None = None
    vanilla_law: dict[str, float] | None = None
    examples_processed: int = 0
    seconds: float = 0.0
    reused: int = 0
    device: str = "cpu"
    visible_devices: str | None = None
    validation_data: str | None = None
    monitor: str | None = None
    tokenizer: dict[str, str] | None = None
    status: str = Status.PENDING

    def headline(self, name: str | None = None) -> str:
        """One line: the prediction, its interval and what it cost, e.g.
        ``tiny_gpt2: predicted loss 2.31 (95% interval 2.25-2.38) at 8192 examples; ...``."""
        head = f"{name}: " if name else ""
        if self.status != Status.OK or self.predicted_loss is None:
            return f"{head}no prediction ({self.status}); {len(self.sizes)} subset(s) run"
        interval = ""
        if bounded(self.interval):
            lo, hi = self.interval
            interval = f" ({self.interval_level:.0%} interval {format_number(lo, 4)}-{format_number(hi, 4)})"
        left_out = f", {len(self.outliers)} left out" if self.outliers else ""
        left_out += f", {self.reused} reused" if self.reused else ""
        return (
            f"{head}predicted loss {format_number(self.predicted_loss, 4)}{interval} at {self.target_size} "
            f"examples; {len(self.sizes)} subsets{left_out}, {self.seconds:.0f} s on {self.device}"
        )

    def plot(self, name: str = "candidate", ax=None):
        """The measured points, the method's curve and the prediction, into the Matplotlib ``ax`` when given;
        returns the ``Figure`` (a new one is not attached to pyplot, and displays inline in a notebook)."""
        from lightning_rectlaw.core.presentation.figures import curve_figure

        return curve_figure({name: self}, title=f"{name}: fine-tuning scaling curve", ax=ax)

    def __repr__(self) -> str:
        return f"RectifiedLawResult({self.headline()}, method={self.method!r})"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<b>RectifiedLawResult</b> {escape(self.headline())}"

    def to_json(self) -> str:
        d = asdict(self)
        d["failed"] = {str(k): v for k, v in self.failed.items()}
        d["outliers"] = {str(k): v for k, v in self.outliers.items()}
        return json.dumps(d, indent=2, allow_nan=False, default=float)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RectifiedLawResult:
        d = dict(d)
        d["failed"] = {int(k): v for k, v in d.get("failed", {}).items()}
        d["outliers"] = {int(float(k)): v for k, v in d.get("outliers", {}).items()}
        if d.get("interval") is not None:
            d["interval"] = tuple(d["interval"])
        return cls(**d)


def loss_table(records: Sequence[Mapping[str, Any]], source: str = "<sweep>") -> LossTable:
    """The finished candidates' curves as one loss table (the paper's CSV format).

    Rows are the records with status ``ok`` and at least one measured size; a size a candidate did
    not run is a missing cell. The zero-shot column, parameter counts and families are filled where
    the records have them (``zero_shot_loss``, ``num_params``, ``family``).

    Raises:
        ValueError: no record has a finished curve."""
    ok = [r for r in records if r["status"] == Status.OK and r.get("sizes")]
    if not ok:
        raise ValueError("no finished candidate with measured losses: nothing to tabulate")
    sizes = np.array(sorted({float(s) for r in ok for s in r["sizes"]}))
    losses = np.full((len(ok), sizes.size), np.nan)
    for row, r in zip(losses, ok):
        row[np.searchsorted(sizes, np.asarray(r["sizes"], dtype=float))] = r["losses"]

    def column(key: str) -> np.ndarray | None:
        values = [r.get(key) for r in ok]
        return (
            None if all(v is None for v in values) else np.array([np.nan if v is None else v for v in values])
        )

    families = [r.get("family") for r in ok]
    return LossTable(
        tuple(r["name"] for r in ok),
        sizes,
        losses,
        zero_shot=column("zero_shot_loss"),
        num_params=column("num_params"),
        families=None if all(f is None for f in families) else tuple(f or "" for f in families),
        source=source,
    )


def status_line(record: Mapping[str, Any]) -> str:
    """A record's status as the summary and the sweep's console show it: a failed job's
    ``error`` after the status (``failed: ValueError: ...``), else its ``status`` as written."""
    error = record.get("error")
    return Status.FAILED.because(error) if error else str(record["status"])


def tokenizer_label(info: Mapping[str, Any] | None) -> str | None:
    """A tokenizer as people read it: its name and the start of its hash (``gpt2 (3f2a9c1b)``)."""
    if not info:
        return None
    return f"{info.get('name') or '?'} ({str(info.get('sha256') or '?')[:8]})"


class Incomparable(NamedTuple):
    """Why candidates' losses cannot be ranked together (``problem``) and what to do (``fix``)."""

    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}\n{self.fix}"


def incomparable(records: Sequence[Mapping[str, Any]]) -> Incomparable | None:
    """Why the losses of these candidates cannot be ranked together, or ``None`` when they can. Losses of
    different metrics (``monitor``) are different things. Under different tokenizers (told apart by hash) only
    a loss per byte (``val_bpb``) is comparable: a per-token loss ranks the tokenizers, not the models. A
    record without a monitor or a tokenizer (an older file, a datamodule that does not say) counts as unknown,
    not as different."""
    monitors = _names_by(records, lambda r: r.get("monitor"))
    if len(monitors) > 1:
        return Incomparable(
            f"the candidates were scored on different metrics ({_listing(monitors)}), "
            "whose values are not one loss",
            f"score every candidate on one metric they all log: rectlaw.monitor={BITS_PER_BYTE} "
            f"(RectifiedLawCallback(monitor={BITS_PER_BYTE!r}))",
        )
    tokenizers = _names_by(records, _tokenizer_key)
    if len(tokenizers) > 1 and set(monitors) != {BITS_PER_BYTE}:
        labels = {label: names for (label, _), names in tokenizers.items()}
        scored = next(iter(monitors), "a metric they did not record")
        return Incomparable(
            f"the candidates have different tokenizers ({_listing(labels)}) and were scored on "
            f"{scored}, not on bits per byte: a per-token loss ranks the tokenizers, not the models",
            f"rank them on the loss every tokenizer shares: rectlaw.monitor={BITS_PER_BYTE} "
            f"(RectifiedLawCallback(monitor={BITS_PER_BYTE!r}))",
        )
    return None


def _names_by(records: Sequence[Mapping[str, Any]], key) -> dict[Any, list[str]]:
    """The candidates' names by ``key(record)``, those without a value left out."""
    groups: dict[Any, list[str]] = {}
    for r in records:
        if (value := key(r)) is not None:
            groups.setdefault(value, []).append(str(r["name"]))
    return groups


def _tokenizer_key(record: Mapping[str, Any]) -> tuple[str | None, str] | None:
    """A record's tokenizer, told apart by its whole hash and shown by its label."""
    info = record.get("tokenizer") or {}
    return (tokenizer_label(info), str(info["sha256"])) if info.get("sha256") else None


def _listing(groups: Mapping[Any, list[str]]) -> str:
    return "; ".join(f"{value}: {', '.join(names)}" for value, names in groups.items())


class CandidateRecord(TypedDict, total=False):
    """One sweep job's record: ``candidate.json``, a row of the summary's JSON and what the
    rounds driver reads. A finished job has every field of :class:`RectifiedLawResult` (as its
    ``to_json`` writes them) and these:

    Keys:
        name: the candidate (its config name, or its hub name / path).
        status: a :class:`Status`; a file writes its value, with why after a colon where there
            is one (``Status.FAILED.because(...)``: ``failed: no prediction: ...``).
        error: the exception, for a failed job.
        overrides: the job's Hydra overrides (read from its ``.hydra/overrides.yaml``).
        num_params, job_seconds, family: the model's size, the job's wall time, its family.
        prob_best: set by the summary's joint ranking (or the round that stopped it).
        round, eliminated_at, elimination_reason: its last round in an adaptive sweep, and the
            rung (examples) after which it stopped, and why."""

    name: str
    status: str
    error: str
    overrides: list[str]
    num_params: int
    job_seconds: float
    family: str
    prob_best: float | None
    round: int
    eliminated_at: int
    elimination_reason: str
