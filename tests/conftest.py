from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1].parent / "shared" / "benchmark"


@pytest.fixture
def benchmark_dir() -> Path:
    if not (BENCHMARK / "flan.csv").exists():
        pytest.skip(f"paper benchmark tables not found at {BENCHMARK} (../shared/benchmark)")
    return BENCHMARK
