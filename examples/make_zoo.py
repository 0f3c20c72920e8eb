"""Local model zoos with real pre-learned data, and selection checked against full fine-tuning.

Config-built random models have no pre-learned data, so they cannot show the pre-power phase the
rectified law is about. This script makes candidates that do, with nothing downloaded. Two zoos:

* ``--zoo stdlib`` (default, 5 candidates): pretrained on Python's standard-library source,
  fine-tuned on English help texts (``pydoc_data.topics``). Its curves do not cross: the loss at
  the budget already ranks them.
* ``--zoo cross`` (9 candidates): small models pretrained for long against larger ones pretrained
  briefly or not at all, GPT-2 and Llama, fine-tuned on a domain unlike their pretraining text
  (the Unicode character-name list from ``unicodedata``). Built so that the ranking at small
  budgets differs from the ranking after full fine-tuning: the case selectors exist for.
* ``--zoo code`` (14 candidates): the models of both zoos (built in ``--sources``, default
  ``zoo`` and ``zoo-cross``, and linked here as ``std-<name>`` and ``x-<name>``), fine-tuned on
  a code base none of them was pretrained on: the ``email``, ``http`` and ``json`` packages of
  the standard library (the pretraining corpus has only its top-level modules). Measured after
  the adaptive schedule's defaults were fixed, as a table nothing was chosen on.
* ``--zoo props`` (the same 14): fine-tuned on tabular text unlike any pretraining text, the
  Unicode character properties from ``unicodedata`` (code point, category, bidirectional class,
  East Asian width, combining class, mirrored, decomposition, numeric value). Measured after
  zoo-code, with the same defaults, nothing chosen on it either.
* ``--zoo mixed`` (8 candidates, ``examples/zoo_mixed.py``): GPT-2, Llama, T5 and BART, each with
  its own tokenizer (byte-level BPEs of 512 to 4,096 tokens, one T5 on bytes), pretrained on the
  standard library and the help texts, fine-tuned on supervised pairs (a signature -> its
  docstring's first paragraph, ``data=sft``) and scored in bits per byte (``val_bpb``). Held out:
  measured once, nothing tuned on it.

1. **Zoo** (``python examples/make_zoo.py [--zoo cross]``): small causal LMs of two architectures
   and several sizes, pretrained for different numbers of steps, plus untrained controls. Each is
   saved with ``save_pretrained`` together with a byte-level tokenizer (``ByT5Tokenizer``, no
   vocabulary file needed) in ``zoo/<name>/``, so ``model=hf model.model_name_or_path=zoo/<name>``
   loads it exactly as it would load a hub checkpoint. A second run reuses finished models
   (``zoo/<name>/zoo_spec.json`` records what was built).
2. **Ground truth** (``--truth``): the Hydra app fine-tunes every candidate on every nested subset
   of the zoo's fine-tuning text up to the full target set, zero-shot included. The
   losses become the zoo's own loss table in the paper's CSV format (``zoo/zoo_losses.csv``, so
   ``rectlaw evaluate zoo/zoo_losses.csv`` works on it), and the selectors are scored with
   PearCorr, RelAcc and Compute at several budgets exactly as on the paper's benchmark
   (``zoo/zoo_selection.csv``, ``zoo/zoo_selection.md``), with a log-log plot of every curve
   (``zoo/zoo_curves.png``).

Examples::

    python examples/make_zoo.py                        # build the zoo (cached)
    python examples/make_zoo.py --truth                # + ground truth and scores
    python examples/make_zoo.py --zoo cross --truth    # the zoo whose curves cross
    python examples/make_zoo.py --zoo code --truth     # both zoos' models on new code
    python examples/make_zoo.py --zoo props --truth    # ... and on Unicode character properties
    OMP_NUM_THREADS=1 python examples/make_zoo.py --zoo mixed --truth   # tokenizers and architectures differ
    python examples/make_zoo.py --truth --accelerator gpu
    python examples/make_zoo.py --out /tmp/z --models gpt2-s-short,control --scale 0.05 \\
        --truth --target 128 --min-size 16 --ratios 2,4   # a miniature zoo (the slow test)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import zoo_mixed

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 64  # bytes per example, pretraining and fine-tuning alike

GPT2_S = {"model_type": "gpt2", "n_layer": 2, "n_embd": 128, "n_head": 4, "n_positions": BLOCK}
GPT2_M = {"model_type": "gpt2", "n_layer": 4, "n_embd": 192, "n_head": 6, "n_positions": BLOCK}
LLAMA_S = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 128,
    "intermediate_size": 344,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": BLOCK,
}


@dataclass(frozen=True)
class Spec:
    """One zoo candidate: an architecture and how many pretraining steps (batch 32 × 64 bytes)."""

    name: str
    config: dict
    steps: int
    seed: int = 0


GPT2_XS = {"model_type": "gpt2", "n_layer": 1, "n_embd": 64, "n_head": 2, "n_positions": BLOCK}
LLAMA_M = {
    "model_type": "llama",
    "num_hidden_layers": 4,
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_attention_heads": 6,
    "num_key_value_heads": 6,
    "max_position_embeddings": BLOCK,
}


@dataclass(frozen=True)
class Zoo:
    """A zoo: its candidates, pretraining corpus, fine-tuning text and ground-truth defaults."""

    specs: tuple[Spec, ...]
    pretrain: str  # "stdlib" (Python source) or "stdlib+english" (source and pydoc topics)
    target_text: str  # "pydoc_topics" (English help texts) or a key of TEXTS
    target: int  # full fine-tuning set, in 64-byte examples
    min_size: int
    ratios: str


ZOOS = {
    "stdlib": Zoo(
        (
            Spec("control", GPT2_S, 0),  # untrained: no pre-learned data at all
            Spec("gpt2-s-short", GPT2_S, 150),
            Spec("gpt2-s-long", GPT2_S, 1200),
            Spec("gpt2-m-mid", GPT2_M, 500),
            Spec("llama-s-mid", LLAMA_S, 500),
        ),
        pretrain="stdlib",
        target_text="pydoc_topics",
        target=4096,
        min_size=16,
        ratios="4,8,16,32",
    ),
    # Small models pretrained long (good early, little capacity) against larger ones pretrained
    # briefly or not at all (poor early, more capacity), on a target unlike the pretraining text.
    "cross": Zoo(
        (
            Spec("gpt2-xs-long", GPT2_XS, 2000),
            Spec("gpt2-xs-mid", GPT2_XS, 600),
            Spec("gpt2-s-long", GPT2_S, 1500),
            Spec("llama-s-long", LLAMA_S, 1500),
            Spec("gpt2-m-short", GPT2_M, 100),
            Spec("gpt2-m-mid", GPT2_M, 400),
            Spec("llama-m-short", LLAMA_M, 100),
            Spec("llama-m-control", LLAMA_M, 0),
            Spec("gpt2-m-control", GPT2_M, 0),
        ),
        pretrain="stdlib+english",
        target_text="unicode_names",
        target=8192,
        min_size=32,
        ratios="4,8,16,32",
    ),
    # The two zoos above on other texts (no specs: their models are linked, see LINKED_FROM).
    "code": Zoo((), pretrain="", target_text="stdlib_packages", target=4096, min_size=8, ratios="4,8,16,32"),
    "props": Zoo((), pretrain="", target_text="unicode_props", target=4096, min_size=8, ratios="4,8,16,32"),
}
ZOO = ZOOS["stdlib"].specs
#: The candidates of the zoos without specs (code, props): name prefix -> the zoo whose models
#: they link.
LINKED_FROM = {"std": "stdlib", "x": "cross"}
#: The ``code`` zoo's fine-tuning text: these standard-library packages, one document per module.
CODE_PACKAGES = ("email", "http", "json")
SELECTORS = ("robust_ats", "ats", "pooled", "subtuning", "zeroshot")
#: The zoo whose candidates differ in tokenizer and architecture (its own module, ``zoo_mixed``).
MIXED = "mixed"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--zoo", choices=sorted([*ZOOS, MIXED]), default="stdlib", help="which zoo (default: stdlib)"
    )
    p.add_argument("--out", default=None, help="zoo directory (default: ./zoo, ./zoo-<name> for the others)")
    p.add_argument("--models", default=None, help="comma-separated subset (default: the whole zoo)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply pretraining steps (tests: 0.05)")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator (default: auto)")
    p.add_argument("--truth", action="store_true", help="also fine-tune on the full target set")
    p.add_argument(
        "--target", type=int, default=None, help="full fine-tuning set, in 64-byte examples (mixed: in pairs)"
    )
    p.add_argument("--min-size", type=int, default=None, help="smallest subset")
    p.add_argument("--ratios", default=None, help="budgets scored, as target / r")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per subset")
    p.add_argument(
        "--sources",
        default="zoo,zoo-cross",
        help="--zoo code/props: the stdlib and cross zoos whose models it links (built if missing)",
    )
    args = p.parse_args(argv)
    if args.zoo == MIXED:
        return main_mixed(args, p)

    zoo = ZOOS[args.zoo]
    out = Path(args.out or ("zoo" if args.zoo == "stdlib" else f"zoo-{args.zoo}")).resolve()
    if not zoo.specs:  # a zoo of the other zoos' models
        zoo = replace(zoo, specs=link_sources(out, args.sources.split(","), args.scale, args.accelerator))
    specs = chosen(zoo.specs, args.models, p)
    t0 = time.perf_counter()
    for spec in specs:
        if ZOOS[args.zoo].specs:  # a zoo of the other zoos' models built them in their own
            build(spec, out, args.scale, args.accelerator, zoo.pretrain)
    print(f"[zoo] {len(specs)} models ready in {out} ({time.perf_counter() - t0:.0f} s)")
    if args.truth:
        ratios = [int(r) for r in (args.ratios or zoo.ratios).split(",")]
        target = args.target or zoo.target
        min_size = args.min_size or zoo.min_size
        ground_truth(specs, out, zoo, target, min_size, args.epochs, ratios, args.accelerator)
    return 0


def chosen(specs, models: str | None, p: argparse.ArgumentParser) -> list:
    """The specs named in ``--models`` (all without it); an unknown name stops with the choices."""
    known = {s.name: s for s in specs}
    names = models.split(",") if models else list(known)
    unknown = [m for m in names if m not in known]
    if unknown:
        p.error(f"unknown zoo model(s) {unknown}; choose from {sorted(known)}")
    return [known[m] for m in names]


def main_mixed(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """``--zoo mixed``: build (or reuse) its candidates, then the ground truth if asked."""
    out = Path(args.out or f"zoo-{MIXED}").resolve()
    specs = chosen(zoo_mixed.SPECS, args.models, p)
    t0 = time.perf_counter()
    for spec in specs:
        zoo_mixed.build(spec, out, args.scale, args.accelerator)
    print(f"[zoo] {len(specs)} models ready in {out} ({time.perf_counter() - t0:.0f} s)")
    if args.truth:
        target = args.target or zoo_mixed.TARGET
        ratios = [int(r) for r in (args.ratios or zoo_mixed.RATIOS).split(",")]
        min_size = args.min_size or zoo_mixed.MIN_SIZE
        sweep, seconds = zoo_mixed.ground_truth(specs, out, target, min_size, args.epochs, args.accelerator)
        title = f"Zoo mixed: fine-tuning on stdlib_docs pairs, {target} pairs, bits per byte"
        write_truth(sweep, out, title, target, ratios, seconds)
    return 0


# --- the zoo -------------------------------------------------------------------------------------


def stdlib_sources(limit_bytes: int = 3_000_000) -> list[Path]:
    """The standard library's own ``.py`` files (sorted, capped): the pretraining corpus."""
    files, total = [], 0
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        files.append(f)
        total += f.stat().st_size
        if total >= limit_bytes:
            break
    return files


def english_file(out: Path) -> Path:
    """Python's English help texts (``pydoc_data.topics``) as one text file."""
    from lightning_rectlaw.hf.embedded import builtin_text

    path = out / "_text" / "pydoc_topics.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(builtin_text("pydoc_topics")))
    return path


def unicode_names_file(out: Path, lines_per_doc: int = 64) -> Path:
    """The Unicode character-name list (``0041 LATIN CAPITAL LETTER A Lu``), from ``unicodedata``.

    One JSON-lines document per ``lines_per_doc`` characters; the computed names (CJK
    ideographs, Hangul syllables, ...) are left out, they would only repeat a counter. The text
    depends on the Python's Unicode version, recorded in the file name.
    """
    import unicodedata

    path = out / "_text" / f"unicode_names_{unicodedata.unidata_version}.jsonl"
    if path.exists():
        return path
    lines = [
        f"{cp:04X} {unicodedata.name(chr(cp))} {unicodedata.category(chr(cp))}" for cp in _named_code_points()
    ]
    docs = ["\n".join(lines[i : i + lines_per_doc]) for i in range(0, len(lines), lines_per_doc)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return path


def package_sources_file(out: Path) -> Path:
    """The :data:`CODE_PACKAGES` modules' source, one JSON-lines document per module (sorted).

    Read from the running Python each time (a patch release can change them) and written only
    when it differs from the file already there."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    path = out / "_text" / f"stdlib_packages_{sys.version_info[0]}.{sys.version_info[1]}.jsonl"
    files = [f for pkg in CODE_PACKAGES for f in sorted((stdlib / pkg).glob("*.py"))]
    text = "".join(json.dumps({"text": f.read_text()}) + "\n" for f in files)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def _named_code_points() -> list[int]:
    """Code points from U+0020 with a name in ``unicodedata``, but the computed names (CJK
    ideographs, Hangul syllables, ...), which would only repeat a counter."""
    import unicodedata

    skip = ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HANGUL SYLLABLE", "TANGUT", "KHITAN")
    skip += ("NUSHU", "EGYPTIAN HIEROGLYPH", "CUNEIFORM")
    return [
        cp
        for cp in range(0x20, 0x30000)
        if (name := unicodedata.name(chr(cp), None)) is not None and not name.startswith(skip)
    ]


def unicode_props_file(out: Path, lines_per_doc: int = 64) -> Path:
    """The Unicode character properties (``0439 Ll L A 0 0 0438 0306 -``: code point, category,
    bidirectional class, East Asian width, combining class, mirrored, decomposition, numeric value),
    one JSON-lines document per ``lines_per_doc`` characters named in ``unicodedata``, the same
    characters as :func:`unicode_names_file` (their names left out)."""
    import unicodedata

    path = out / "_text" / f"unicode_props_{unicodedata.unidata_version}.jsonl"
    if path.exists():
        return path
    lines = []
    for cp in _named_code_points():
        ch = chr(cp)
        fields = [f"{cp:04X}", unicodedata.category(ch), unicodedata.bidirectional(ch)]
        fields += [
            unicodedata.east_asian_width(ch),
            str(unicodedata.combining(ch)),
            str(unicodedata.mirrored(ch)),
        ]
        fields += [unicodedata.decomposition(ch) or "-", str(unicodedata.numeric(ch, "-"))]
        lines.append(" ".join(fields))
    docs = ["\n".join(lines[i : i + lines_per_doc]) for i in range(0, len(lines), lines_per_doc)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return path


def link_sources(out: Path, sources: list[str], scale: float, accelerator: str) -> tuple[Spec, ...]:
    """Build (or reuse) the models of the zoos in :data:`LINKED_FROM`, in the directories
    ``sources`` (same order), and link each as ``out/<prefix>-<name>``; their specs, renamed."""
    if len(sources) != len(LINKED_FROM):
        raise SystemExit(f"--sources needs {len(LINKED_FROM)} directories (stdlib, cross zoo), got {sources}")
    specs = []
    for (prefix, name), src in zip(LINKED_FROM.items(), sources):
        src_out = Path(src).resolve()
        for spec in ZOOS[name].specs:
            target = build(spec, src_out, scale, accelerator, ZOOS[name].pretrain)
            link = out / f"{prefix}-{spec.name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.exists() and not link.is_symlink():
                raise SystemExit(f"{link} exists and is not a link to {target}: move it or use another --out")
            if link.is_symlink() and link.resolve() != target.resolve():
                link.unlink()
            if not link.is_symlink():
                link.symlink_to(target, target_is_directory=True)
            specs.append(replace(spec, name=link.name))
    return tuple(specs)


def tokenizer_dir(out: Path) -> Path:
    """A byte-level Hugging Face tokenizer shared by every zoo model (saved once)."""
    path = out / "_tokenizer"
    if not (path / "tokenizer_config.json").exists():
        from transformers import ByT5Tokenizer

        ByT5Tokenizer(extra_ids=0).save_pretrained(path)
    return path


def build(spec: Spec, out: Path, scale: float, accelerator: str, pretrain: str = "stdlib") -> Path:
    """Pretrain ``spec`` (or reuse it) and save model + tokenizer under ``out/<name>``."""
    from transformers import AutoTokenizer

    from lightning_rectlaw import CausalLMModule, TextDataModule

    path = out / spec.name
    steps = round(spec.steps * scale)
    record = {**asdict(spec), "steps": steps, "pretrain": pretrain}
    meta = path / "zoo_spec.json"
    if meta.exists() and json.loads(meta.read_text()).get("spec") == record:
        print(f"[zoo] {spec.name}: cached")
        return path
    tok_path = tokenizer_dir(out)
    tok = AutoTokenizer.from_pretrained(tok_path)
    config = {**spec.config, "vocab_size": len(tok), "eos_token_id": tok.eos_token_id}
    config["pad_token_id" if spec.config["model_type"] == "llama" else "bos_token_id"] = tok.pad_token_id
    module = CausalLMModule(config=config, lr=1e-3, warmup_steps=min(50, steps), seed=spec.seed)
    t0 = time.perf_counter()
    if steps > 0:
        files = [str(f) for f in stdlib_sources()]
        if pretrain == "stdlib+english":
            files.append(str(english_file(out)))
        data = TextDataModule(
            files=files,
            tokenizer=str(tok_path),
            block_size=BLOCK,
            batch_size=32,
            seed=spec.seed,
        )
        zoo_mixed.pretrain(module, data, steps, spec.seed, accelerator, progress=True)
    module.model.save_pretrained(path)
    tok.save_pretrained(path)
    seconds = time.perf_counter() - t0
    meta.write_text(json.dumps({"spec": record, "pretrain_seconds": seconds, "params": module.num_params}))
    print(f"[zoo] {spec.name}: {module.num_params:,} parameters, {steps} steps, {seconds:.0f} s")
    return path


# --- ground truth ----------------------------------------------------------------------------------


def ground_truth(specs, out: Path, zoo: Zoo, target, min_size, epochs, ratios, accelerator) -> None:
    """Fine-tune every candidate on all nested subsets up to ``target`` with the Hydra app, then
    write the zoo's loss table and the selectors' scores."""
    sweep = out / f"truth_sweep_t{target}_m{min_size}_e{epochs}"  # re-running resumes it
    paths = ",".join(str(out / s.name) for s in specs)
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "train.py"),
        "-m",
        "model=hf",
        f"model.model_name_or_path={paths}",
        "model.lr=1e-3",
        *_target_data(zoo, out),
        f"data.tokenizer={tokenizer_dir(out)}",
        f"data.block_size={BLOCK}",
        f"rectlaw.budget={target}",
        f"rectlaw.target_size={target}",
        f"rectlaw.min_size={min_size}",
        "rectlaw.schedule=all",
        "rectlaw.zero_shot=true",
        f"trainer.max_epochs={epochs}",
        f"trainer.accelerator={accelerator}",
        f"hydra.sweep.dir={sweep}",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=out)
    title = f"Zoo: fine-tuning on {zoo.target_text}, {target} examples of {BLOCK} bytes"
    write_truth(sweep, out, title, target, ratios, time.perf_counter() - t0)


def write_truth(sweep: Path, out: Path, title: str, target, ratios, seconds: float) -> None:
    """The zoo's loss table, the selectors' scores and the curves' plot, from a finished sweep."""
    from lightning_rectlaw.core.files import atomic_write_text
    from lightning_rectlaw.core.presentation.figures import curve_figure
    from lightning_rectlaw.report import collect_results
    from lightning_rectlaw.schedule.evaluate import DIGITS, evaluate
    from lightning_rectlaw.selection import METHODS, loss_table

    records = collect_results(sweep)
    failed = [r["name"] for r in records if r["status"] != "ok"]
    if failed:
        print(f"[zoo] warning: failed candidates left out of the table: {failed}", file=sys.stderr)
    for r in records:
        r["name"] = Path(r["name"]).name  # zoo/<name> -> <name>
        base = r["name"]
        for prefix in LINKED_FROM:  # the linked zoos' std-/x- prefixes
            base = base.removeprefix(f"{prefix}-")
        r["family"] = "control" if base == "control" else base.split("-")[0]
    table = loss_table(records, source=str(out / "zoo_losses.csv"))
    table.write_csv(out / "zoo_losses.csv")
    rows = evaluate(table, SELECTORS, ratios, target=float(target), compute=True)
    lines = ["method,ratio,metric,value"]
    lines += [
        f"{METHODS[r.method].label},{r.ratio},{r.metric},{r.value:.{DIGITS.get(r.metric, 1)}f}" for r in rows
    ]
    atomic_write_text(out / "zoo_selection.csv", "\n".join(lines) + "\n")
    md = _markdown(rows, ratios, table, seconds)
    atomic_write_text(out / "zoo_selection.md", md)
    fig = curve_figure({r["name"]: r for r in records if r["status"] == "ok"}, title=title)
    fig.savefig(out / "zoo_curves.png", dpi=120)
    print(md)
    print(f"[zoo] ground truth: {seconds:.0f} s; wrote {out / 'zoo_losses.csv'}, zoo_selection.csv/.md,")
    print(f"[zoo] zoo_curves.png; rerun the scores with: rectlaw evaluate {out / 'zoo_losses.csv'}")


#: Fine-tuning texts written to a file in the zoo directory: ``target_text`` -> its writer.
TEXTS = {
    "unicode_names": unicode_names_file,
    "stdlib_packages": package_sources_file,
    "unicode_props": unicode_props_file,
}


def _target_data(zoo: Zoo, out: Path) -> list[str]:
    """Hydra overrides selecting the zoo's fine-tuning text."""
    if zoo.target_text == "pydoc_topics":
        return []  # the app's default data
    text = TEXTS[zoo.target_text](out)
    return [
        "data=text_files",
        f"data.files=[{text}]",
        "data.batch_size=32",
        "data.max_val_blocks=256",
    ]


def _markdown(rows, ratios, table, seconds: float) -> str:
    from lightning_rectlaw.selection import METHODS

    truth = table.column(table.max_size)
    order = sorted(range(len(table)), key=lambda i: truth[i])
    lines = [
        "| candidate | parameters | zero-shot loss | loss at full size |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {table.names[i]} | {int(table.num_params[i]):,} | {table.zero_shot[i]:.3f} | {truth[i]:.3f} |"
        for i in order
    ]
    lines += ["", "| method | metric | " + " | ".join(f"1/{r}" for r in ratios) + " |"]
    lines += ["|---|---|" + "---|" * len(ratios)]
    for method in SELECTORS:
        for metric in ("PearCorr", "RelAcc", "Compute"):
            vals = [r.value for r in rows if r.method == method and r.metric == metric]
            label = METHODS[method].label
            lines.append(f"| {label} | {metric} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    lines += ["", f"Ground-truth sweep: {seconds:.0f} s wall."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
