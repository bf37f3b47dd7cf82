"""What the UI may import, and the command-line contract."""

import ast
import json
import os
import subprocess
import sys

from core.presets import PRESETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UI_MODULES = ["core.config", "core.factors", "core.presets", "core.data", "core.preprocess", "core.compare",
              "core.pair", "core.pool", "core.worker", "core.recording"]


def _python(*args, timeout=600, **env):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_modules_the_ui_uses_do_not_import_tensorflow():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in UI_MODULES)
            + "import core.pair, core.batch as b; b.library_versions(); b.default_cache()\n"
            + "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules)\n"
            + "print(','.join(heavy) or 'none')")
    done = _python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def _core_imports() -> dict[str, set[str]]:
    """core module -> the core modules it imports, at its top or inside a function (read from its source)."""
    graph = {}
    for name in os.listdir(os.path.join(ROOT, "core")):
        if not name.endswith(".py"):
            continue
        module = "core" if name == "__init__.py" else f"core.{name[:-3]}"
        with open(os.path.join(ROOT, "core", name)) as f:
            tree = ast.parse(f.read())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "core":
                imported |= {f"core.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("core."):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("core.")}
        graph[module] = imported - {module}
    return graph


def test_no_core_module_imports_itself_through_others():
    """A circle of imports, even one held apart by imports inside functions, is a knot in the layers."""
    graph = _core_imports()
    assert graph["core.budget"] == {"core.config", "core.machine"}  # the reader sees function-level imports too
    circles = []

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]:
                circles.append(" -> ".join(path + [nxt]))
            elif nxt not in path and nxt > path[0]:  # each circle once, from its smallest module
                walk(path + [nxt])

    for module in sorted(graph):
        walk([module])
    assert circles == []


def _first_page_in_a_fresh_interpreter(tmp_path, prepare_delay_s: float, setup: str = "", then: str = "") -> str:
    """The app's first page in AppTest, in a fresh interpreter (nothing imported yet, as in a fresh server) with an
    empty cache, the background preparation starting `prepare_delay_s` after it; `setup` runs before it and
    `then` after it. Returns what the script printed."""
    code = ("import sys\n"
            "from streamlit.testing.v1 import AppTest\n"
            "from ui import run\n"
            + setup +
            f"run.PREPARE_DELAY_S = {prepare_delay_s}\n"
            "at = AppTest.from_file('app.py', default_timeout=60)\n"
            "at.run()\n"
            "assert not at.exception and at.main.button, 'no first page'\n"
            + then)
    done = _python("-c", code, timeout=120, DIVERGENCE_LAB_CACHE=str(tmp_path))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_first_page_of_a_fresh_server_draws_without_numpy(tmp_path):
    """Every first visit lands on the first page: on a server with nothing cached it draws without importing
    core.pair, NumPy, pandas, Altair or narwhals (~0.15 s before anything shows); they load once it is drawn
    (ui.run.prepare_in_background, held back here)."""
    loaded = _first_page_in_a_fresh_interpreter(tmp_path, 600, then=(
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'pandas', 'altair', 'sklearn', 'narwhals')"
        " or m in ('core.pair', 'core.batch', 'core.data')))\n"))
    assert loaded == "[]"


def test_a_page_that_comes_while_the_preparation_imports_waits_for_it(tmp_path):
    """The preparation that starts once the first page is drawn imports what a result needs (NumPy, pandas,
    Altair and narwhals); a page opened meanwhile (here the Sweep page, which charts) waits for it before its own
    imports, rather than import the same modules at once in its own thread, which can trip Python's import
    deadlock detection. Those imports are slowed here, so that the page comes while they run."""
    setup = ("import threading, time\n"
             "import core.pool\n"
             "core.pool.WORKER_COMMAND = (sys.executable, 'tests/standin_worker.py')\n"
             "importers, page_imports_after_them = set(), []\n"
             "class Recorder:\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name.split('.')[0] in ('numpy', 'pandas', 'altair', 'narwhals'):\n"
             "            time.sleep(0.002)\n"
             "            if name.split('.')[0] in ('altair', 'narwhals'):\n"
             "                importers.add(threading.current_thread().name)\n"
             "        if name == 'core.analysis':  # the Sweep page's first import of its own\n"
             "            page_imports_after_them.append(run._imported.is_set())\n"
             "sys.meta_path.insert(0, Recorder())\n")
    then = ("assert not page_imports_after_them, 'the first page imported core.analysis'\n"
            "from streamlit.runtime.pages_manager import PagesManager\n"
            "sys.path.insert(0, 'tests')\n"
            "from helpers import pages_init_as_on_a_server\n"
            "PagesManager.__init__ = pages_init_as_on_a_server()\n"
            "at.switch_page('pages/sweep.py').run()\n"
            "assert not at.exception and [h.value for h in at.header] == ['Sweep'], at.exception\n"
            "while core.pool._default_pool is None:\n"
            "    time.sleep(0.05)\n"
            "core.pool._default_pool.shutdown()\n"
            "print(page_imports_after_them, len(importers))\n")
    assert _first_page_in_a_fresh_interpreter(tmp_path, 0, setup, then) == "[True] 1"


def test_cli_lists_presets_one_per_line():
    done = _python("-m", "core", "presets")
    assert done.returncode == 0
    assert done.stdout.split() == list(PRESETS)


def test_cli_runs_a_preset_and_writes_the_result(tmp_path, monkeypatch, session_cache):
    # The session's shared cache: the preset's real runs at 2 epochs are those other tests trained (or trains them).
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE", str(session_cache))
    out = tmp_path / "out"
    done = _python("-m", "core", "run", "--preset", "adam-epsilon", "--epochs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["b_differs"] == {"optimizer.epsilon": 1e-8}
    for m in ("a", "b"):
        assert [row["epoch"] for row in result[m]["history"]] == [1, 2]
        assert all(isinstance(row["loss"], float) for row in result[m]["history"])
        assert result[m]["versions"]["keras"] == "3.15.1"
    assert result["a"]["effective"]["optimizer"]["epsilon"] == 1e-7
    assert result["b"]["effective"]["optimizer"]["epsilon"] == 1e-8
    c = result["compare"]
    assert c["weights_bitwise_equal"] is False and c["first_divergent_epoch"] == 1
    assert c["prediction_max_abs_delta"] > 0 and 0 <= c["disagreement_rate"] <= 1
    assert f"prediction max |A-B|: {c['prediction_max_abs_delta']:.6g}" in done.stdout
    import numpy as np

    with np.load(out / "arrays.npz") as arrays:
        assert arrays["a/weights/dense_0/kernel"].shape == (3, 64, 64)
        assert arrays["b/predictions"].shape == (3, 360, 10)


def test_cli_runs_the_articles_example_1_in_one_process_and_says_why(tmp_path):
    out = tmp_path / "out"
    done = _python("-m", "core", "run", "--preset", "two-models-one-process", "--epochs", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["same_process"] is True and result["diagnosis"]["mechanism"] == "initial_weights"
    assert [result[m]["effective"]["same_process"]["built"] for m in "ab"] == [1, 2]
    assert f"why: Initial weights. {result['diagnosis']['sentence']}" in done.stdout
    assert "keras.Sequential and tf.keras.Sequential are the same class here" in done.stdout


def test_cli_bad_input_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "pair.json"
    bad.write_text(json.dumps({"a": {"training": {"batch_size": 0}}}))
    done = _python("-m", "core", "run", str(bad), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.strip() == "error: training.batch_size: 0 is out of range; allowed 1 to 4096 (integer)"
    bad.write_text("{not json")
    done = _python("-m", "core", "run", str(bad), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "not valid JSON" in done.stderr
    assert not (tmp_path / "o").exists()
