"""The first page in AppTest: the causes with their scenarios, one click to run one, the default's cached result."""

import dataclasses
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.factors import parse_pair
from core.engines import gpu_present
from core.presets import ALL_PRESETS, DEFAULT_PRESET, PRESETS, default_pair
from ui import gallery

ARTICLE_CAUSES = ["Random initialisation", "Optimizer settings", "Backend differences", "Data preprocessing"]


def _app() -> AppTest:
    return AppTest.from_file("../app.py", default_timeout=60)


def _sidebar_keys(at: AppTest) -> set[str]:
    """The keys of the inputs the sidebar draws."""
    return {w.key for kind in ("selectbox", "number_input", "text_input", "toggle") for w in getattr(at.sidebar, kind)}


@pytest.fixture
def one_epoch(monkeypatch):
    """Shorten a scenario to one epoch, for this test, so that its run is quick (the app reads PRESETS at run time)."""

    def shorten(name: str) -> None:
        preset = PRESETS[name]
        training = {**preset.a.get("training", {}), "epochs": 1}
        monkeypatch.setitem(PRESETS, name, dataclasses.replace(preset, a={**preset.a, "training": training}))

    return shorten


def test_every_scenario_is_under_exactly_one_cause():
    listed = [name for cause in gallery.CAUSES for name in cause.scenarios]
    assert sorted(listed) == sorted(ALL_PRESETS)
    assert [cause.title for cause in gallery.CAUSES][:4] == ARTICLE_CAUSES


def test_the_first_page_shows_the_causes_with_their_scenarios(app_test_pages):
    at = _app()
    at.run()
    assert not at.exception
    headings = [m.value.removeprefix("#### ") for m in at.main.markdown if m.value.startswith("#### ")]
    assert headings == [cause.title for cause in gallery.CAUSES]
    assert [b.label for b in at.main.button] == [name for cause in gallery.CAUSES for name in cause.scenarios
                                                 if name in PRESETS]
    if not gpu_present():  # the GPU scenarios are listed only where a GPU is
        assert {"tf32-vs-float32", "gpu-vs-cpu"}.isdisjoint(b.label for b in at.main.button)
    captions = [c.value for c in at.main.caption]
    assert all(PRESETS[name].description in captions for name in PRESETS)
    assert "**B differs in**" in at.main.markdown[0].value


def test_one_click_loads_a_scenario_into_the_sidebar_and_trains_it(app_test_pages, standin_workers, one_epoch):
    one_epoch("run-it-twice")
    at = _app()
    at.run()
    assert at.sidebar.selectbox(key="scenario").value == DEFAULT_PRESET
    at.main.button(key="gallery.run-it-twice").click()
    at.run(timeout=300)
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="scenario").value == "run-it-twice"
    assert at.sidebar.caption[0].value == PRESETS["run-it-twice"].description  # loaded, not edited
    assert at.query_params["scenario"] == "run-it-twice"
    assert parse_pair(at.session_state["result"].summary["config"]) == PRESETS["run-it-twice"].pair()
    assert {m.label for m in at.metric} >= {"Largest prediction gap"}  # the Overview draws it, no gallery
    assert not at.main.button


def test_a_first_visit_opens_on_the_default_scenarios_cached_result(app_test_pages, standin_workers, one_epoch):
    from core.pair import run_pair

    one_epoch(DEFAULT_PRESET)
    trained = run_pair(default_pair())
    at = _app()
    at.run()
    assert not at.exception
    shown = at.session_state["result"]
    assert shown.cached and shown.summary == trained.summary
    assert {m.label for m in at.metric} >= {"Largest prediction gap"} and not at.main.button


def test_the_workers_start_only_after_the_first_page(app_test_pages, standin_workers, monkeypatch):
    """The first page is drawn before anything competes with it for the CPU; the pool starts its workers (and the
    first Run's modules load) PREPARE_DELAY_S later, so that a first Run finds warm workers."""
    import threading

    import core.pool
    from ui import run

    monkeypatch.setattr(run, "_prepared", threading.Event())  # as on a fresh server
    monkeypatch.setattr(run, "PREPARE_DELAY_S", 0.5)
    at = _app()
    at.run()
    assert not at.exception and core.pool._default_pool is None  # nothing started while the page was drawn
    deadline = time.monotonic() + 30
    while core.pool._default_pool is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pool = core.pool._default_pool
    assert pool is not None and pool.live() == pool.warm_target > 0
    pool.wait_warm()
    assert all(worker.ready_at for worker in pool.idle)


def test_a_closed_sidebar_section_draws_no_inputs_and_loses_no_values(app_test_pages):
    """The first page has every section closed, so the browser draws a short sidebar; what was typed in a
    section stays in the pair (and the link) after it is closed."""
    from ui import run, sidebar

    at = _app()
    at.run()
    assert [e.label for e in at.sidebar.expander] == list(sidebar.SECTIONS.values())
    assert not {key for key in _sidebar_keys(at) if key.startswith(("a.", "data."))}
    at.session_state["section.shared"] = True
    at.run()
    assert {"a.training.epochs", "a.training.batch_size"} <= _sidebar_keys(at)
    assert not {key for key in _sidebar_keys(at) if key.startswith("data.")}  # the other sections stay closed
    at.sidebar.number_input(key="a.training.epochs").set_value(3).run()
    at.session_state["section.shared"] = False
    at.run()
    assert "a.training.epochs" not in _sidebar_keys(at)
    at.run()  # and once more, now that the widget is gone
    assert not at.exception
    assert at.session_state[run.SIDEBAR_PAIR].a.training.epochs == 3
    assert at.query_params["a.training.epochs"] == "3"


def test_past_the_first_page_the_sections_are_plain_expanders_with_every_input(app_test_pages):
    """Elsewhere (another page, or once there is a result) opening a section must not rerun the script: a rerun
    would stop a training or a batch under way. A plain expander has no id, so the browser has nothing to send."""
    at = _app()
    at.run()
    assert all(e.proto.id for e in at.sidebar.expander)  # the first page's lazy sections report their state
    at.switch_page("pages/sweep.py").run()
    assert not at.exception
    assert not any(e.proto.id for e in at.sidebar.expander)
    assert {"data.dataset", "a.training.epochs", "a.optimizer.learning_rate"} <= _sidebar_keys(at)
