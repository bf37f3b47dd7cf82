import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.pool import WorkerPool  # noqa: E402
from helpers import pages_init_as_on_a_server  # noqa: E402


@pytest.fixture(scope="session")
def pool():
    """Warm workers shared by the training tests (each run still gets a fresh process). It keeps a zygote for
    each of the suite's framework environments (TensorFlow, tf_keras, oneDNN on and off, JAX, PyTorch), so
    that none is imported twice for want of room. It is the app's pool (core.pool.default_pool) as well, so that
    the app's runs in AppTest share its zygotes."""
    import core.pool

    p = WorkerPool(max_workers=4, warm=2, max_zygotes=6)
    # (standin_workers puts stand-ins in its place for a test.) An app pool started before this one, by an
    # earlier AppTest's first page, would otherwise keep its warm workers to the end of the session.
    replaced, core.pool._default_pool = core.pool._default_pool, p
    if replaced is not None:
        replaced.shutdown()
    yield p
    core.pool._default_pool = None
    p.shutdown()


STANDIN_COMMAND = (sys.executable, str(ROOT / "tests" / "standin_worker.py"))


def _pool_running(command: tuple[str, ...]):
    p = WorkerPool(max_workers=4, warm=2, command=command)
    yield p
    p.shutdown()


@pytest.fixture(scope="session")
def standin_pool():
    """Workers without a framework (tests/standin_worker.py), for tests of what surrounds training:
    the pool, the cache, batches."""
    yield from _pool_running(STANDIN_COMMAND)


@pytest.fixture(scope="session")
def slow_standin_pool():
    """Stand-in workers whose every epoch takes 10 ms: a long run is still midway when a test stops it."""
    yield from _pool_running(STANDIN_COMMAND + ("0.01",))


@pytest.fixture
def standin_workers(monkeypatch):
    """Every pool started during the test, the app's own (core.pool.default_pool) too, runs stand-in workers."""
    import core.pool

    monkeypatch.setattr(core.pool, "WORKER_COMMAND", STANDIN_COMMAND)
    monkeypatch.setattr(core.pool, "_default_pool", None)
    yield
    if core.pool._default_pool is not None:
        core.pool._default_pool.shutdown()


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Fixtures wider than one test (set up before `private_cache`) keep off the user's cache too. The suite's
    processes (pytest-xdist's `-n`) share it, as a server's sessions share one cache (its writes are atomic):
    the presets' runs that test_mechanisms, test_analysis and test_imports_cli read are trained once, whichever
    process runs each file."""
    with pytest.MonkeyPatch.context() as patch:
        if os.environ.get("PYTEST_XDIST_WORKER"):  # the run's temporary folder, above each process's own
            folder = tmp_path_factory.getbasetemp().parent / "session-cache"
            folder.mkdir(exist_ok=True)
        else:
            folder = tmp_path_factory.mktemp("session-cache")
        patch.setenv("DIVERGENCE_LAB_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session", autouse=True)
def compiled_programs(session_cache):
    """One folder of JAX's compiled programs for the session, as a server has one. The folder is part of a JAX
    worker's environment (core.engines), so one per test (under `private_cache`) started a zygote, a JAX import,
    in every test with a JAX run and pushed other environments' zygotes out of the pool. Sharing it changes no
    number (test_engines.py checks that, in a folder of its own)."""
    import core.engines

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core.engines, "cache_root", lambda: session_cache)
        yield


@pytest.fixture(scope="session")
def shared_cache(session_cache):
    """One run cache for the tests that read what real runs measured (verdicts, staircases, the pages of
    app-wide fixtures): a run that several of them need is trained once per session."""
    from core.batch import RunCache

    return RunCache(session_cache)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's result cache, nor another test's."""
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE", str(tmp_path / "cache"))
    import core.batch

    monkeypatch.setattr(core.batch, "_default_cache", None)


@pytest.fixture(scope="session")
def app_test_pages():
    """AppTest forgets between runs that st.navigation switched the legacy pages/ mode off
    (the real server remembers); mirror the server, as DESIGN.md describes. And each AppTest scans every
    installed package's metadata for Streamlit components (0.15-0.5 s here, 30 times a suite), as a server does
    once at its start: what is installed does not change while the tests run, so they share one scan."""
    from streamlit.components.v2 import manifest_scanner
    from streamlit.runtime import pages_manager

    installed_components = manifest_scanner.scan_component_manifests()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pages_manager.PagesManager, "__init__", pages_init_as_on_a_server())
        patch.setattr(manifest_scanner, "scan_component_manifests", lambda *args, **kwargs: installed_components)
        yield


# The suite's files, the longest first (their tests' summed seconds in a two-process run of the README's command:
# test_app 82, test_mechanisms 80, test_analysis 72, test_training 71, test_browser 69, test_ray 52, ...), so that
# neither process is left running a long file alone at the end (pytest-xdist hands out the files with the most
# tests first). test_analysis comes after test_mechanisms has had time to train the presets' runs that both
# read from the shared session cache, rather than beside it training the same runs. Files not named come last.
LONGEST_FIRST = ("test_app.py", "test_mechanisms.py", "test_training.py", "test_browser.py", "test_analysis.py",
                 "test_ray.py", "test_export.py", "test_zygote.py", "test_engines.py", "test_robustness.py",
                 "test_fuzz.py", "test_imports_cli.py", "test_ray_nodes.py", "test_worker_lifecycle.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` hands out the files in the order collected (above), not by their number of tests."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)
