from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1].parent / "shared" / "benchmark"


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
