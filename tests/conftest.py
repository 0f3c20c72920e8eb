from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1].parent / "shared" / "benchmark"
SIZES = [6400, 3200, 1600, 800, 400, 200]  # a job's subsets, largest first


@pytest.fixture
def benchmark_dir() -> Path:
    if not (BENCHMARK / "flan.csv").exists():
        pytest.skip(f"paper benchmark tables not found at {BENCHMARK} (../shared/benchmark)")
    return BENCHMARK


@pytest.fixture(autouse=True, scope="session")
def token_cache(tmp_path_factory):
    """The app's tokenized-block cache goes to a temporary directory, not the user's ~/.cache
    (subprocesses inherit the variable)."""
    import os

    old = os.environ.get("RECTLAW_CACHE_DIR")
    os.environ["RECTLAW_CACHE_DIR"] = str(tmp_path_factory.mktemp("rectlaw_cache"))
    yield
    if old is None:
        os.environ.pop("RECTLAW_CACHE_DIR", None)
    else:
        os.environ["RECTLAW_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny checkpoints saved as save_pretrained leaves them: two GPT-2s with different BPE
    tokenizers (300 and 1,000 tokens; the second with a chat template marking the assistant's
    tokens), a T5 and a BART (see tests/checkpoints.py)."""
    from checkpoints import MARKED_TEMPLATE, save_bart, save_gpt2, save_t5

    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "gpt2_bpe300": save_gpt2(root / "gpt2_bpe300", 300),
        "gpt2_bpe1000": save_gpt2(root / "gpt2_bpe1000", 1000, template=MARKED_TEMPLATE),
        "t5": save_t5(root / "t5"),
        "bart": save_bart(root / "bart"),
    }


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory) -> dict[str, Path]:
    """Train and validation files of the embedded pairs, as prompt/completion and as chats."""
    from checkpoints import sft_files

    root = tmp_path_factory.mktemp("sft")
    train, val = sft_files(root, n_train=300, n_val=32)
    chat_train, chat_val = sft_files(root, n_train=300, n_val=32, chat=True)
    return {"train": train, "val": val, "chat_train": chat_train, "chat_val": chat_val}


@pytest.fixture
def write_job():
    """Writes a job's ``candidate.json`` as a sweep job would: the curve ``scale * 3 / (5 + D^0.3)``
    at ``sizes`` (``bad``: an index whose loss is multiplied by 1.3), predicted at 102400, with the
    job's ``.hydra/overrides.yaml`` when ``overrides`` are given; ``fields`` replace the record's."""
    import json

    def write(
        job_dir,
        name,
        scale=1.0,
        *,
        sizes=SIZES,
        method="ats",
        options=None,
        overrides=None,
        bad=None,
        **fields,
    ):
        job_dir.mkdir(parents=True, exist_ok=True)
        losses = [scale * 3.0 / (5 + s**0.3) for s in sizes]
        if bad is not None:
            losses[bad] *= 1.3
        if options is None:
            options = {"k": 3, "delta": 5.0, **({"holdouts": 3} if method == "robust_ats" else {})}
        record = {"name": name, "status": "ok", "method": method, "options": options, "predicted_loss": scale}
        record.update(interval=None, sizes=sizes, losses=losses, target_size=102400, **fields)
        (job_dir / "candidate.json").write_text(json.dumps(record))
        if overrides is not None:
            (job_dir / ".hydra").mkdir(exist_ok=True)
            (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        return job_dir

    return write


@pytest.fixture
def hydra_job():
    """Writes the ``.hydra/`` files Hydra writes when a job starts (its overrides, its model and the
    ``model`` group's choice), for a job that may never write its result."""
    import json

    def write(job_dir, overrides, model_name=None, choice="tiny_gpt2"):
        (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        model = {"model_name_or_path": model_name} if model_name else {"_target_": "x"}
        (job_dir / ".hydra" / "config.yaml").write_text(json.dumps({"model": model}))
        hydra = {"hydra": {"runtime": {"choices": {"model": choice}}}}
        (job_dir / ".hydra" / "hydra.yaml").write_text(json.dumps(hydra))

    return write
