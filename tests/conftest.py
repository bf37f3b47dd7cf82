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


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Fixtures wider than one test (set up before `private_cache`) keep off the user's cache too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIVERGENCE_LAB_CACHE", str(tmp_path_factory.mktemp("session-cache")))
        yield


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's result cache, nor another test's."""
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE", str(tmp_path / "cache"))
    import core.batch

    monkeypatch.setattr(core.batch, "_default_cache", None)


@pytest.fixture(scope="session")
def app_test_pages():
    """AppTest forgets between runs that st.navigation switched the legacy pages/ mode off
    (the real server remembers); mirror the server, as DESIGN.md describes."""
    from streamlit.runtime import pages_manager

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pages_manager.PagesManager, "__init__", init)
        yield
