"""The README runs as written and shows what the code prints.

* Every ```python block of README.md runs, except one whose preceding line is an HTML comment
  ``<!-- not run: ... -->``. Each block runs in a fresh namespace (blocks do not build on each
  other: a reader can copy any one of them). The working directory is a mirror of the repository
  root made of links to its entries, so a block sees ``data/...`` exactly as from the repository
  root while what it writes (``lightning_logs/``) lands in ``tmp_path``. A line ``name  # Repr(...)``
  in a block claims what ``repr(name)`` is at that point, and is checked.
* Every shell block line ``$ rectlaw CMD ...`` is run as ``python -m lightning_rectlaw CMD ...``
  from the repository root, and its stdout must equal the lines the README shows under it up to
  the next ``$`` line or the end of the block (trailing whitespace aside).
* README.md is at most 300 lines, and its Quick start is exactly the two commands below.

Blocks that train or spawn processes are marked ``slow``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_LINES = 300
QUICK_START = [
    'pip install torch==2.13.0 -e ".[dev]" && python examples/train.py -m',
    "python -m pytest -q",
]
SHELL = {"bash", "sh", "shell", "console"}
NOT_RUN = "<!-- not run"
REPR_LINE = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s+#\s+(?P<repr>[A-Z]\w*\(.*\))\s*$")


@dataclass
class Block:
    lang: str
    lines: list[str]
    line: int  # 1-based line of the opening fence
    before: str  # the nearest non-empty line above the fence
    section: str  # the nearest "## " heading above


def _blocks(text: str) -> list[Block]:
    blocks, current, before, section = [], None, "", ""
    for i, line in enumerate(text.splitlines(), start=1):
        if current is None:
            if line.startswith("```"):
                current = Block(line[3:].strip().lower(), [], i, before, section)
            elif line.strip():
                before = line.strip()
                if line.startswith("## "):
                    section = line[3:].strip()
        elif line.startswith("```"):
            blocks.append(current)
            current, before = None, ""
        else:
            current.lines.append(line)
    assert current is None, f"README.md: the block opened at line {current.line} is never closed"
    return blocks


BLOCKS = _blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang == "python" and not b.before.startswith(NOT_RUN)]


def _cli_examples() -> list[tuple[str, list[str], int]]:
    """(command after ``$ ``, the output lines shown under it, README line) per ``$ rectlaw``."""
    found = []
    for b in BLOCKS:
        if b.lang not in SHELL:
            continue
        for j, line in enumerate(b.lines):
            if not line.startswith("$ rectlaw "):
                continue
            out = []
            for rest in b.lines[j + 1 :]:
                if rest.startswith("$ "):
                    break
                out.append(rest.rstrip())
            while out and not out[-1]:
                out.pop()
            found.append((line[2:].strip(), out, b.line + 1 + j))
    return found


CLI = _cli_examples()


def _trains(block: Block) -> bool:
    return ".fit(" in "\n".join(block.lines) or "Trainer(" in "\n".join(block.lines)


def _python_params():
    for b in PYTHON:
        marks = [pytest.mark.slow] if _trains(b) else []
        yield pytest.param(b, id=f"line{b.line}", marks=marks)


def _mirror(tmp_path: Path) -> Path:
    """A directory that looks like the repository root (links to its entries) but writes to tmp."""
    for entry in ROOT.iterdir():
        if entry.name not in {".git"}:
            (tmp_path / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return tmp_path


def _chunks(lines: list[str]):
    """The block cut after each ``name  # Repr(...)`` line: (code so far, (name, repr) or None)."""
    start = 0
    for k, line in enumerate(lines):
        m = REPR_LINE.match(line)
        if m:
            yield "\n".join(lines[start : k + 1]), (m["name"], m["repr"])
            start = k + 1
    yield "\n".join(lines[start:]), None


def test_readme_is_at_most_300_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines, more than {MAX_LINES}: move detail to docs/"


def test_quick_start_is_the_two_commands():
    quick = [b for b in BLOCKS if b.section == "Quick start" and b.lang in SHELL]
    assert quick, "README.md has no shell block under '## Quick start'"
    assert [line.strip() for line in quick[0].lines if line.strip()] == QUICK_START


def test_readme_has_examples_to_check():
    assert len(PYTHON) >= 2, "README.md should keep its runnable Python examples"
    assert len(CLI) >= 2, "README.md should keep its `$ rectlaw ...` examples with their output"
    assert all(out for _, out, _ in CLI), "every `$ rectlaw ...` example shows its output"
    not_run = [b for b in BLOCKS if b.lang == "python" and b.before.startswith(NOT_RUN)]
    assert len(not_run) <= 2, "keep the Python blocks that are not run few"


@pytest.mark.parametrize("block", list(_python_params()))
def test_python_block_runs(block: Block, tmp_path, monkeypatch):
    monkeypatch.chdir(_mirror(tmp_path))
    namespace: dict = {"__name__": "__main__"}
    for code, claim in _chunks(block.lines):
        exec(compile(code, f"README.md:{block.line}", "exec"), namespace)
        if claim is not None:
            name, shown = claim
            assert repr(namespace[name]) == shown, f"README.md line {block.line}: repr of {name}"


@pytest.mark.slow
@pytest.mark.parametrize(("command", "shown"), [pytest.param(c, o, id=c) for c, o, _ in CLI])
def test_cli_example_prints_what_readme_shows(command: str, shown: list[str]):
    args = shlex.split(command)
    assert args[0] == "rectlaw"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_rectlaw", *args[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [line.rstrip() for line in proc.stdout.splitlines()]
    while printed and not printed[-1]:
        printed.pop()
    assert printed == shown


HISTORY = re.compile(
    r"\bsessions?\s+\d|\b(these|later|earlier|previous|next|both|all) sessions\b"
    r"|\b(in|by|from|since|before|after|until) sessions?\s+\d",
    re.I,
)
MODULE_PATH = re.compile(r"lightning_rectlaw/\w+\.py")


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_user_docs_name_no_work_history_and_no_module_files(page: Path):
    text = page.read_text(encoding="utf-8")
    assert not HISTORY.search(text), f"{page.name}: {HISTORY.search(text)[0]!r}"
    if page.name != "architecture.md":  # the code map names the modules; the other pages name public API
        found = MODULE_PATH.search(text)
        assert not found, f"{page.name} names a module file: {found[0]}"
