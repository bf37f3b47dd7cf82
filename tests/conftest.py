import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.pool import WorkerPool  # noqa: E402


@pytest.fixture(scope="session")
def pool():
    """Warm workers shared by the training tests (each run still gets a fresh process)."""
    p = WorkerPool(max_workers=4, warm=2)
    yield p
    p.shutdown()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's result cache."""
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE", str(tmp_path / "cache"))
    import core.pair

    monkeypatch.setattr(core.pair, "_default_cache", None)
