"""Nothing a visitor, a link or a diverging run does crashes the app, the CLI or an analysis (issue 9).

Pairs whose runs diverge at different epochs (on stand-in workers: what is tested is how the app
handles a non-finite loss), configs the run budget refuses or records thinly (real workers), hostile link
text, a failed Run.
"""

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from core import analysis, budget
from core.batch import Planned, run_batch
from core.config import ConfigError, DataConfig
from core.data import load
from core.engines import ENGINES
from core.factors import make_pair, parse_run
from core.pair import run_pair
from core.pool import WorkerPool
from conftest import STANDIN_COMMAND
from helpers import open_sections, unescaped
from ui import state

MOONS = DataConfig(dataset="moons", n_samples=200)
PAGES = ["pages/overview.py", "pages/loss_curves.py", "pages/weights.py", "pages/predictions.py",
         "pages/attribution.py", "pages/reproduce.py"]
# SGD on the 200 moons in the stand-in worker (float32): measured to diverge (loss non-finite) at epoch 3
# (lr 10), 2 (lr 300) and 1 (lr 1e7), and not within 4 epochs at lr 1.
SGD = parse_run({"optimizer": {"name": "sgd", "learning_rate": 300.0}, "training": {"epochs": 4}})


def render_every_page(query: dict) -> AppTest:
    """Open the link (a cached result opens with it) and draw every page; none may raise."""
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["result"] is not None
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
    return at


@pytest.mark.parametrize("b_lr", [10.0, 1e7], ids=["b-diverges-after-a", "b-diverges-before-a"])
def test_runs_that_diverge_at_different_epochs_are_compared_and_every_page_renders(standin_pool, standin_workers,
                                                                                   app_test_pages, b_lr):
    pair = make_pair(MOONS, SGD, {"optimizer.learning_rate": b_lr})
    result = run_pair(pair, standin_pool)
    s, c = result.summary, result.summary["compare"]
    a_end, b_end = s["a"]["diverged_epoch"], s["b"]["diverged_epoch"]
    assert (a_end, b_end) == ((2, 3) if b_lr == 10.0 else (2, 1))
    assert s["a"]["recorded_epochs"] == list(range(a_end + 1)) and s["b"]["recorded_epochs"] == list(range(b_end + 1))
    assert [e["epoch"] for e in c["per_epoch"]] == list(range(min(a_end, b_end) + 1))
    # Both end in NaN predictions: nothing to compare, and no NaN counted as a class change.
    assert c["compared_samples"] == 0 and c["disagreements"] == 0 and c["prediction_max_abs_delta"] is None
    assert c["nonfinite_predictions"] == {"a": 40, "b": 40}

    at = render_every_page(state.to_params(pair))  # opening the link again serves both runs from the cache
    assert at.session_state["result"].cached
    at.switch_page("pages/overview.py").run()
    verdict = " ".join(m.value for m in at.markdown)
    assert f"A diverged at epoch {a_end}" in verdict and f"B diverged at epoch {b_end}" in verdict
    assert "not finite for 40 of 40 test samples" in verdict
    if b_lr == 1e7:  # the Attribution page's batch, with runs that diverge at different epochs
        at.switch_page("pages/attribution.py").run()
        at.main.number_input[0].set_value(1)
        at.run()
        at.main.button[0].click()
        at.run(timeout=300)
        assert not at.exception, at.exception
        said = unescaped(" ".join(m.value for m in at.main.markdown))
        # One factor: no 100% share passed off as an explanation, the Overview's diagnosis instead.
        assert "one factor, Learning rate, so it accounts for the whole difference by definition" in said
        assert at.session_state["result"].summary["diagnosis"]["sentence"] in said
        assert len(at.get("vega_lite_chart")) == 0  # no shares chart, and no noise floor (below)
        assert f"A diverged at epoch {a_end}" in unescaped(" ".join(e.value for e in at.error))  # no noise floor


def test_the_cli_writes_the_result_of_a_pair_whose_b_diverges_first(standin_workers, tmp_path, capsys):
    from core.__main__ import main

    config = tmp_path / "pair.json"
    config.write_text(json.dumps({"data": {"dataset": "moons", "n_samples": 200},
                                  "a": {"optimizer": {"name": "sgd"}, "training": {"epochs": 3}},
                                  "b_differs": {"optimizer.learning_rate": 1e7}}))
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "result.json").read_text())
    assert summary["a"]["status"] == "ok"
    assert summary["b"]["status"] == "diverged" and summary["b"]["diverged_epoch"] == 1
    assert summary["compare"]["first_divergent_epoch"] == 1 and summary["compare"]["compared_samples"] == 0
    assert "B: diverged (diverged at epoch 1" in capsys.readouterr().out


def test_an_analysis_with_diverging_runs_names_them_instead_of_crashing(standin_pool):
    pair = make_pair(MOONS, parse_run({"optimizer": {"name": "sgd", "learning_rate": 1.0},
                                       "training": {"epochs": 3}}), {"optimizer.learning_rate": 300.0})
    plan = {**analysis.attribution_plan(pair), **analysis.noise_plan(pair, 1)}
    outcomes = analysis.execute(pair, plan, standin_pool)
    shares = analysis.attribution(pair, {k: outcomes[k] for k in analysis.attribution_plan(pair)})
    assert shares["diverged"] == {"B": 2, "A+optimizer.learning_rate": 2}
    assert shares["total"]["prediction"] is None and shares["factors"][0]["prediction_share"] is None
    floor = analysis.noise_floor(pair, {k: outcomes[k] for k in analysis.noise_plan(pair, 1)}, None)
    assert floor["within_noise"] is None and floor["ratio"] is None and len(floor["noise"]) == 1
    stairs = analysis.staircase(["optimizer.learning_rate"], {
        "A": outcomes["A"], "step 0": outcomes["B"], "step 1": outcomes["B-optimizer.learning_rate"]},
        {"bitwise_identical": True})
    assert stairs["steps"][0]["prediction"] is None and stairs["steps"][1]["prediction"] == 0.0
    assert stairs["lands_on_run_twice_level"] and stairs["diverged"] == {"step 0": 2}


@pytest.mark.parametrize("config, says", [
    ({"data": {"dataset": "moons", "n_samples": 20000}, "a": {"training": {"epochs": 500, "batch_size": 1}}},
     "8,000,000 optimizer steps"),
    ({"a": {"model": {"hidden": [1024] * 6}, "training": {"epochs": 500}}}, "weight-row updates"),
])
def test_a_config_over_the_run_budget_is_refused_before_any_worker_starts(config, says):
    from core.factors import parse_pair

    pair = parse_pair({**config, "b_differs": {"optimizer.epsilon": 1e-8}})
    pool = WorkerPool(max_workers=2, warm=0)
    try:
        with pytest.raises(ConfigError, match=says):
            run_pair(pair, pool, cache=False)
        assert pool.live() == 0
    finally:
        pool.shutdown()


def test_the_largest_network_is_refused_only_when_one_snapshot_outgrows_the_record_budget():
    ds = load(DataConfig())
    big = parse_run({"model": {"hidden": [1024] * 6}, "training": {"epochs": 20}})
    params = budget.parameter_count(big, 64, 10)
    assert params == 64 * 1024 + 1024 + 5 * (1024 * 1024 + 1024) + 1024 * 10 + 10
    every = budget.check(big, ds)  # 21 MB a snapshot: the initialisation and the last epoch fit in 48 MB
    assert budget.recorded_epochs(20, every) == [0, 20]
    with pytest.raises(ConfigError, match="one snapshot"):
        budget.check(parse_run({"numerics": {"dtype": "float64"}}, big), ds)


def test_a_network_too_big_for_a_small_containers_memory_is_refused(monkeypatch):
    from core import machine

    monkeypatch.setattr(machine, "memory_limit_mb", lambda: 690.0)  # Community Cloud's smallest tier
    tf_worker = ENGINES["keras"].worker_mb
    assert budget.worker_headroom_mb(1, tf_worker) == 690 - machine.PARENT_RESERVE_MB - tf_worker
    ds = load(DataConfig())
    assert budget.check(parse_run({}), ds, budget.worker_headroom_mb(1, tf_worker)) == 1  # the default network fits
    pair = make_pair(DataConfig(), parse_run({"model": {"hidden": [1024] * 3}, "training": {"epochs": 2}}),
                     {"optimizer.epsilon": 1e-8})
    pool = WorkerPool(max_workers=1, warm=0)
    try:
        with pytest.raises(ConfigError, match="2,176,010 weights need about 100 MB .* leaves a worker 40 MB"):
            run_pair(pair, pool, cache=False)
        assert pool.live() == 0
    finally:
        pool.shutdown()


@pytest.mark.parametrize("model, data", [
    ({"hidden": [16, 8], "batch_norm": True, "scale_layer": True}, MOONS),
    ({"kind": "cnn", "hidden": [8]}, DataConfig()),
    ({"kind": "gru", "hidden": [4]}, DataConfig(dataset="series", n_samples=80, window=6)),
])
def test_the_budgets_parameter_count_is_what_the_engines_build(pool, model, data):
    run = parse_run({"model": model, "training": {"epochs": 1}})
    ds = load(data)
    outcome = run_batch({"a": Planned(run)}, ds, pool, cache=False)["a"]
    built = sum(w[0].size for w in outcome["weights"].values())
    assert built == budget.parameter_count(run, ds.x_train.shape[1], ds.n_classes or 1)


def test_a_run_over_the_record_budget_keeps_every_kth_epoch_with_the_same_numbers(standin_pool, monkeypatch):
    """The recording is the engines' own (core.recording), here in the stand-in worker."""
    run = parse_run({"training": {"epochs": 8}})
    ds = load(MOONS)
    full = run_batch({"a": Planned(run)}, ds, standin_pool, cache=False)["a"]
    # ~9.7 KB per snapshot: a 0.05 MB budget keeps 5 snapshots of the 9 (workers read it from the environment)
    monkeypatch.setenv("DIVERGENCE_LAB_RECORD_MB", "0.05")
    pool = WorkerPool(max_workers=1, warm=0, command=STANDIN_COMMAND)
    try:
        thin = run_batch({"a": Planned(run)}, ds, pool, cache=False)["a"]
    finally:
        pool.shutdown()
    assert full["recorded_epochs"] == list(range(9)) and thin["recorded_epochs"] == [0, 2, 4, 6, 8]
    assert len(thin["history"]) == 8
    for name, w in full["weights"].items():
        assert thin["weights"][name].tobytes() == w[[0, 2, 4, 6, 8]].tobytes(), name
    assert thin["predictions"].tobytes() == full["predictions"][[0, 2, 4, 6, 8]].tobytes()


def test_link_text_is_shown_as_plain_short_text(app_test_pages):
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.query_params.update({"![px](http://127.0.0.1:9/pixel.png)": "1",
                            "[Click here to log in](http://127.0.0.1:9/phish)": "1",
                            "a.optimizer.epsilon": "x" * 100_000})
    at.run()
    assert not at.exception
    shown = [w.value for w in at.warning]
    assert len(shown) == 3 and all(len(w) < 2_000 for w in shown)
    for markdown in shown:  # outside code spans every bracket and parenthesis is escaped: no image, no link
        outside_code = re.sub(r"(`+).*?\1", "", markdown)
        assert "](" not in outside_code and "![" not in outside_code and "://" not in outside_code
    assert "'![px](http://127.0.0.1:9/pixel.png)'" in unescaped(" ".join(shown))
    assert at.session_state["a.optimizer.epsilon"] == 1e-7


def test_a_failed_run_says_why_outside_the_status_and_marks_the_old_result(app_test_pages, standin_workers):
    at = open_sections(AppTest.from_file("../app.py", default_timeout=60))
    at.query_params.update({"data.dataset": "moons", "data.n_samples": "1000", "a.training.epochs": "1"})
    at.run()
    at.sidebar.button(key="run").click()
    at.run(timeout=300)
    good = at.session_state["result"]
    assert good is not None and not at.info  # the result is the sidebar's pair: no note
    at.sidebar.number_input(key="a.training.batch_size").set_value(1)
    at.run()
    at.sidebar.number_input(key="a.training.epochs").set_value(500)
    at.run()
    at.sidebar.button(key="run").click()
    at.run(timeout=300)
    assert not at.exception
    errors = [e for e in at.main.error]
    assert len(errors) == 1 and "400,000 optimizer steps" in unescaped(errors[0].value)
    # the error is a top-level element of the page, not inside the collapsed status
    assert any(child is errors[0] for child in at.main.children.values())
    assert at.session_state["result"] is good
    assert any("earlier setup" in i.value for i in at.info)
