"""Supervised examples as users bring them, read into one shape: a prompt and a response, or a chat.

Formats (TRL's and Alpaca's field names, detected from the first record's fields or named):

- ``prompt_completion``: ``{"prompt": ..., "completion": ...}``, used as written (the text carries
  any separator between the two, as TRL joins them);
- ``alpaca``: ``{"instruction": ..., "input": ..., "output": ...}``; the prompt is the instruction,
  then a blank line and the input where there is one, then a blank line;
- ``messages``: ``{"messages": [{"role": ..., "content": ...}, ...]}``, a chat whose assistant turns
  are the responses.

Files are ``.jsonl`` (one record a line), ``.json`` (a list of records) or ``.csv`` (a header row).
Every error about a record names its file and 1-based line (``train.jsonl, line 7: ...``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = {
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction", "input", "output"),
    "messages": ("messages",),
}
FORMATS = ("auto", *FIELDS)
ASSISTANT = "assistant"


@dataclass(frozen=True)
class Record:
    """One supervised example: ``prompt`` and ``response``, or ``messages`` (a chat)."""

    where: str  # "train.jsonl, line 7": what an error names
    prompt: str = ""
    response: str = ""
    messages: tuple[tuple[str, str], ...] = ()  # (role, content) turns

    @property
    def is_chat(self) -> bool:
        return bool(self.messages)

    def response_texts(self) -> list[str]:
        """The texts that carry the loss: the response, or every assistant turn."""
        if self.is_chat:
            return [content for role, content in self.messages if role == ASSISTANT]
        return [self.response]


class RecordError(ValueError):
    """A record that cannot be read as a supervised example; the message names file and line."""


def read_records(
    files: Iterable[str | Path], format: str = "auto", fields: Mapping[str, str] | None = None
) -> list[Record]:
    """Every record of ``files``, in order (duplicates kept), as :class:`Record`.

    Args:
        format: one of ``FORMATS``; ``"auto"`` detects it from each file's first record.
        fields: our field names mapped to yours, e.g. ``{"prompt": "question", "completion": "answer"}``.
    """
    check_format(format, fields)
    records = []
    for path in map(Path, files):
        rows = list(_rows(path))
        if not rows:
            raise RecordError(f"{path}: no records; give a file with at least one example")
        records += list(records_from_rows(rows, format, fields or {}))
    return records


def load_hf_dataset(options: Mapping[str, Any], instead: str, **kw: Any) -> Any:
    """``datasets.load_dataset`` with the options given (those set), or an ImportError naming the
    package and ``instead``, the local-files alternative."""
    try:
        import datasets
    except ImportError:
        raise ImportError(
            f"data.hf_dataset={options['path']!r} needs the `datasets` package: pip install "
            f"datasets (or {instead})"
        ) from None
    return datasets.load_dataset(**{k: v for k, v in options.items() if v is not None}, **kw)


def check_format(format: str, fields: Mapping[str, str] | None) -> None:
    if format not in FORMATS:
        raise ValueError(f"`format` should be one of {FORMATS}, got {format!r}")
    known = {f for names in FIELDS.values() for f in names}
    unknown = sorted(set(fields or {}) - known)
    if unknown:
        raise ValueError(
            f"`fields` maps unknown field(s) {unknown}; map any of {sorted(known)} to your names"
        )


def records_from_rows(
    rows: list[tuple[str, Any]], format: str = "auto", fields: Mapping[str, str] | None = None
) -> Iterator[Record]:
    """Records from ``(where, row)`` pairs, the format detected from the first row if ``"auto"``."""
    fields = dict(fields or {})
    name = _detect(rows[0], fields) if format == "auto" else format
    for where, row in rows:
        if not isinstance(row, Mapping):
            raise RecordError(f"{where}: expected an object with fields, got {type(row).__name__}")
        yield _record(where, row, name, fields)


def _detect(first: tuple[str, Any], fields: dict[str, str]) -> str:
    where, row = first
    keys = set(row) if isinstance(row, Mapping) else set()
    for name, names in FIELDS.items():
        required = names[:1] if name == "alpaca" else names  # alpaca's input may be left out
        if all(fields.get(f, f) in keys for f in required) and (name != "alpaca" or "output" in keys):
            return name
    raise RecordError(
        f"{where}: cannot tell the format from the fields {sorted(keys)}; expected "
        "prompt/completion, instruction/input/output or messages: name your fields with "
        "fields={'prompt': ..., 'completion': ...} or set format="
    )


def _text(where: str, row: Mapping, field: str, fields: dict[str, str], required: bool = True) -> str:
    key = fields.get(field, field)
    value = row.get(key)
    if value is None or (required and value == ""):
        if not required:
            return ""
        raise RecordError(
            f"{where}: no {key!r}; every example needs its {field} (or map the field with `fields`)"
        )
    if not isinstance(value, str):
        raise RecordError(f"{where}: {key!r} should be text, got {type(value).__name__}")
    return value


def _record(where: str, row: Mapping, format: str, fields: dict[str, str]) -> Record:
    if format == "prompt_completion":
        prompt = _text(where, row, "prompt", fields, required=False)
        return Record(where, prompt=prompt, response=_text(where, row, "completion", fields))
    if format == "alpaca":
        instruction = _text(where, row, "instruction", fields)
        extra = _text(where, row, "input", fields, required=False)
        prompt = f"{instruction}\n\n{extra}\n\n" if extra else f"{instruction}\n\n"
        return Record(where, prompt=prompt, response=_text(where, row, "output", fields))
    return Record(where, messages=_messages(where, row.get(fields.get("messages", "messages"))))


def _messages(where: str, turns: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"{where}: 'messages' should be a non-empty list of {{role, content}} turns")
    out = []
    for i, turn in enumerate(turns, start=1):
        if not (
            isinstance(turn, Mapping)
            and isinstance(turn.get("role"), str)
            and isinstance(turn.get("content"), str)
        ):
            raise RecordError(f"{where}: turn {i} should be an object with text 'role' and 'content'")
        out.append((turn["role"], turn["content"]))
    if not any(role == ASSISTANT and content for role, content in out):
        raise RecordError(
            f"{where}: no assistant turn with content; a chat example needs a response to learn"
        )
    return tuple(out)


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, row)`` for every record of one file."""
    if not path.exists():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_rows(path)
    elif suffix == ".json":
        yield from _json_rows(path)
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield f"{path.name}, line {reader.line_num}", row
    else:
        raise RecordError(f"{path}: unknown file type {suffix!r}; give .jsonl, .json or .csv files")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield f"{path.name}, line {i}", json.loads(line)
                except json.JSONDecodeError as e:
                    raise RecordError(f"{path.name}, line {i}: not JSON ({e.msg})") from None


def _json_rows(path: Path) -> Iterator[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path.name}, line {e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise RecordError(f"{path.name}, line 1: expected a list of records (or use .jsonl, one a line)")
    decoder, pos, seen, line = json.JSONDecoder(), text.index("[") + 1, 0, 1
    for row in data:  # the line each record starts on, found by decoding the list element by element
        while text[pos] in " \t\r\n,":
            pos += 1
        line, seen = line + text.count("\n", seen, pos), pos
        _, pos = decoder.raw_decode(text, pos)
        yield f"{path.name}, line {line}", row
