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
