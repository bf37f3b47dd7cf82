"""The app in Streamlit's AppTest: real runs through real workers, numbers read back from the result."""

import json

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from core.presets import PRESETS
from helpers import open_sections, unescaped
from ui import sidebar, state

PAGES = ["pages/overview.py", "pages/loss_curves.py", "pages/weights.py", "pages/predictions.py",
         "pages/attribution.py", "pages/reproduce.py"]


def _app(query: dict | None = None) -> AppTest:
    at = open_sections(AppTest.from_file("../app.py", default_timeout=60))
    if query:
        at.query_params.update(query)
    return at


def _run_scenario(at: AppTest, name: str, epochs: int = 2) -> AppTest:
    at.run()
    at.sidebar.selectbox(key="scenario").set_value(name)
    at.run()
    at.sidebar.number_input(key="a.training.epochs").set_value(epochs)
    at.run()
    at.sidebar.button(key="run").click()
    at.run(timeout=300)
    assert not at.exception, at.exception
    return at


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def _chart_data(at: AppTest, index: int):
    """The data frame behind the index-th chart (the largest of its named datasets)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    chart = at.get("vega_lite_chart")[index]
    frames = [convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]
    return max(frames, key=len)


def _encodings(spec: dict) -> set[str]:
    layers = spec.get("layer", [spec])
    return {f"{channel}:{enc.get('field', '')}" for layer in layers
            for channel, enc in layer.get("encoding", {}).items() if isinstance(enc, dict)}


@pytest.fixture(scope="module")
def digits_app(pool, app_test_pages):
    return _run_scenario(_app(), "adam-epsilon")


def test_the_live_chart_holds_each_epochs_train_loss_as_the_runs_reported_it(digits_app):
    """The Run's status draws A's and B's train loss as the epochs arrive (the spec built once, the rows sent
    with each redraw); after the last epochs it holds every epoch of both, as each run's history has it. (The
    first test of the Run's AppTest: the pages after it draw other charts.)"""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    from ui import charts

    result = digits_app.session_state["result"]
    live = [c for c in digits_app.get("vega_lite_chart") if '"title": "train loss"' in c.proto.spec]
    assert len(live) == 1 and not live[0].proto.datasets
    rows = convert_arrow_bytes_to_pandas_df(live[0].proto.data.data)
    for model in "ab":
        drawn = rows[rows["model"] == model.upper()]
        history = result.summary[model]["history"]
        assert drawn["epoch"].tolist() == [h["epoch"] for h in history] == [1, 2]
        assert drawn["loss"].tolist() == [h["loss"] for h in history]
    assert charts.live_loss_spec() == charts.live_loss_spec.__wrapped__()  # the kept spec, as built, after redraws


def test_every_page_renders_the_measured_numbers(app_test_pages, digits_app):
    at = digits_app
    result = at.session_state["result"]
    c = result.summary["compare"]
    at.switch_page("pages/overview.py").run()
    assert not at.exception
    diagnosis = result.summary["diagnosis"]  # the first sentence: the mechanism the runs found
    assert diagnosis["mechanism"] == "update_arithmetic"
    assert unescaped(at.main.markdown[0].value) == f"**Update arithmetic.** {diagnosis['sentence']}"
    assert "epsilon, 1e-08 instead of A's 1e-07" in diagnosis["sentence"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Largest prediction gap"] == f"{c['prediction_max_abs_delta']:.3g}"
    assert shown["Test predictions that change class"] == f"{c['disagreements']} of 360"
    assert shown["Weights first differ at epoch"] == str(c["first_divergent_epoch"])
    assert shown["Final weight distance (L2)"] == f"{c['per_epoch'][-1]['l2']:.3g}"
    final = at.table[0].value
    assert final["test loss"].tolist() == [result.summary[m]["history"][-1]["test_loss"] for m in "ab"]
    assert final["test accuracy"].tolist() == [result.summary[m]["history"][-1]["test_metric"] for m in "ab"]
    differs = at.table[1].value
    assert differs["factor"].tolist() == ["epsilon", "Initial weights"]
    assert differs["A"].tolist()[0] == "1e-07" and differs["B"].tolist()[0] == "1e-08"
    assert "x:epoch" in _encodings(_specs(at)[0]) and "y:l2" in _encodings(_specs(at)[0])

    at.switch_page("pages/loss_curves.py").run()
    assert not at.exception
    loss = _specs(at)[0]
    assert {"color:model", "strokeDash:split", "y:loss"} <= _encodings(loss)
    values = _chart_data(at, 0)
    last_a = values[(values["model"] == "A") & (values["split"] == "train")].iloc[-1]
    assert last_a["loss"] == result.summary["a"]["history"][-1]["loss"]

    at.switch_page("pages/weights.py").run()
    assert not at.exception
    assert at.main.selectbox[0].value == "dense_0/kernel"
    specs = _specs(at)
    assert len(specs) == 4 and "color:model" in _encodings(specs[0])
    initial = _chart_data(at, 0)
    assert len(initial) == 2 * 64 * 64  # every element of A's and B's kernel
    assert sorted(initial[initial["model"] == "A"]["value"]) == sorted(result.weights("a")["dense_0/kernel"][0].ravel())

    at.switch_page("pages/predictions.py").run()
    assert not at.exception
    assert len(at.get("image")) == 8  # the 8x8 inputs of the 8 samples where A and B differ most
    assert {"x:a", "y:b"} <= _encodings(_specs(at)[1])
    top = at.main.dataframe[0].value
    assert len(top) == 8 and top["delta"].is_monotonic_decreasing


def test_sidebar_values_survive_page_switches(app_test_pages, digits_app):
    at = digits_app
    at.sidebar.number_input(key="a.optimizer.learning_rate").set_value(0.002)
    at.run()
    for page in PAGES:
        at.switch_page(page).run()
        assert at.session_state["a.optimizer.learning_rate"] == 0.002
        assert at.session_state["b.optimizer.epsilon"] == 1e-8
    assert at.query_params["a.optimizer.learning_rate"] == "0.002"


def test_a_link_restores_the_pair_exactly(app_test_pages):
    pair = PRESETS["mean-vs-median-impute"].pair(epochs=3)
    params = state.to_params(pair)
    at = _app(params)
    at.run()
    assert not at.exception and not at.warning
    assert state.from_state(at.session_state) == pair
    assert at.session_state["b.preprocess.impute"] == "median" and at.session_state["data.missing_rate"] == 0.1


def test_a_bad_link_parameter_warns_and_falls_back(app_test_pages):
    at = _app({"a.optimizer.epsilon": "banana", "a.training.epochs": "7", "zzz": "1", "b.engine.name": "pytorch"})
    at.run()
    assert not at.exception
    text = unescaped(" ".join(w.value for w in at.warning))
    assert "a.optimizer.epsilon" in text and "'zzz'" in text and "b.engine.name" in text
    assert at.session_state["a.optimizer.epsilon"] == 1e-7 and at.session_state["a.training.epochs"] == 7
    assert at.session_state[state.B_FACTORS] == []


def test_b_differs_in_names_each_factor_with_its_group_once(app_test_pages):
    at = _app()
    at.run()
    options = at.sidebar.multiselect(key=state.B_FACTORS).options
    assert "Engine" in options and "epsilon (Optimizer)" in options  # not "Engine (Engine)"
    assert all(not option.endswith(f"({option.split(' (')[0]})") for option in options)


def _set(at: AppTest, **values) -> None:
    """Set sidebar values the way a person would, through the widgets (by key)."""
    for key, value in values.items():
        widgets = [w for kind in ("selectbox", "number_input", "toggle", "text_input", "multiselect")
                   for w in getattr(at.sidebar, kind) if w.key == key]
        assert len(widgets) == 1, key
        widgets[0].set_value(value)
        at.run()


def _click_run(at: AppTest) -> None:
    at.sidebar.button(key="run").click()
    at.run(timeout=300)
    assert not at.exception, at.exception


def test_two_feature_data_gets_decision_maps_and_series_get_forecasts(app_test_pages, standin_workers):
    at = _app()
    at.run()
    _set(at, **{"data.dataset": "moons", "a.training.epochs": 2})
    _click_run(at)
    at.switch_page("pages/predictions.py").run()
    assert not at.exception
    maps = [s for s in _specs(at) if s.get("mark", {}).get("type") == "rect"]
    assert len(maps) == 3
    grid = _chart_data(at, len(_specs(at)) - 1)
    result = at.session_state["result"]
    assert len(grid) == 60 * 60 and grid["disagree"].sum() == int(
        (result.arrays["a/grid_predictions"].argmax(1) != result.arrays["b/grid_predictions"].argmax(1)).sum())

    _set(at, **{"data.dataset": "series", "a.model.kind": "gru"})
    _click_run(at)
    at.switch_page("pages/predictions.py").run()
    forecast = _chart_data(at, len(_specs(at)) - 1)
    assert set(forecast["source"]) == {"truth", "A", "B"}
    truth = at.session_state["result"].arrays["data/y_test"]
    assert forecast[forecast["source"] == "truth"]["value"].tolist() == truth.tolist()


def test_bad_input_shows_a_clear_message_and_keeps_the_last_result(app_test_pages, standin_workers, tmp_path):
    at = _app()
    at.run()
    _set(at, **{"data.dataset": "moons", "a.training.epochs": 2})
    _click_run(at)
    good = at.session_state["result"]
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b,label\n1,x,0\n2,y,1\n")
    # AppTest cannot drive st.file_uploader; put the saved upload where the uploader puts it
    at.session_state[sidebar.STORE]["data.csv_path"] = str(broken)
    _set(at, **{"data.dataset": "csv"})
    assert at.session_state["data.csv_target"] == "label"
    _click_run(at)
    assert "non-numeric feature column(s) 'b'" in unescaped(" ".join(e.value for e in at.error))
    assert at.session_state["result"] is good
    at.switch_page("pages/overview.py").run()
    assert at.metric and not at.exception  # the last good result is still drawn

    _set(at, **{"data.dataset": "diabetes", "a.optimizer.learning_rate": 1e6})
    _click_run(at)
    result = at.session_state["result"]
    assert result.summary["a"]["status"] == "diverged"
    at.switch_page("pages/overview.py").run()
    n = result.summary["a"]["diverged_epoch"]
    assert any(f"A diverged at epoch {n}" in m.value for m in at.markdown)


def test_a_shared_link_opens_on_the_cached_result(app_test_pages, standin_pool):
    from core.pair import run_pair

    pool = standin_pool
    pair = PRESETS["batch-order"].pair(epochs=2)
    trained = run_pair(pair, pool)
    at = _app(state.to_params(pair))
    at.run()
    assert not at.exception
    shown = at.session_state["result"]
    assert shown.cached and shown.summary == trained.summary
    assert {m.label: m.value for m in at.metric}["Largest prediction gap"] == \
        f"{trained.summary['compare']['prediction_max_abs_delta']:.3g}"


def test_attribution_page_runs_the_batch_and_shows_the_shares(app_test_pages, standin_workers):
    # (the page's reuse, wording and charts; what real runs of this scenario measure: tests/test_analysis.py)
    at = _run_scenario(_app(), "adam-epsilon")
    at.switch_page("pages/attribution.py").run(timeout=300)
    assert not at.exception
    at.main.number_input[0].set_value(1)
    at.run()
    # A, B and A again come from the pair (A again checked its diagnosis); A with epsilon swapped is B:
    # B with it set back and one seed to train.
    assert "**2 runs** to train (4 epochs in all, as many at once as this machine's workers allow); 4 of the 6 " \
        "planned runs were trained before" in at.markdown[0].value
    assert at.markdown[0].value.startswith("The analysis plans A and B, A and B with the one differing factor swapped, "
                                           "A with 1 other seed, and A once more: ")
    at.main.button[0].click()
    at.run(timeout=300)
    assert not at.exception and not at.error
    texts = " ".join(m.value for m in at.markdown)
    # One factor: its 100% share is true by definition, so the page gives the Overview's diagnosis instead.
    assert "one factor, epsilon, so it accounts for the whole difference by definition" in unescaped(texts)
    assert "A trained twice in fresh processes is bitwise identical." in texts
    assert "seed noise" in texts
    assert "nothing to train, all 3 planned runs were trained before" in texts  # the staircase reuses them all
    at.main.button[1].click()
    at.run(timeout=300)
    assert not at.exception
    steps = _chart_data(at, 1)
    assert steps["label"].tolist() == ["B as is", "+ epsilon"] and steps["prediction"].iloc[-1] == 0.0
    assert any("lands where running A twice lands" in m.value for m in at.markdown)


def test_reproduce_page_shows_the_script_the_digests_the_environment_and_the_link(app_test_pages, digits_app):
    from urllib.parse import parse_qsl, urlsplit

    from core.compare import weights_digest
    from core.export import standalone_script
    from core.factors import parse_pair

    at = digits_app
    at.switch_page("pages/reproduce.py").run()
    assert not at.exception and not at.error
    result = at.session_state["result"]
    pair = parse_pair(result.summary["config"])
    script, config, link = (c.value for c in at.code)
    assert script == standalone_script(pair).rstrip("\n")  # st.code drops the last newline
    assert json.loads(config) == result.summary["config"]
    assert dict(parse_qsl(urlsplit(link).query)) == state.to_params(pair)  # (2 epochs: not the scenario as loaded)
    digests = at.main.dataframe[0].value
    assert digests["digest"].tolist() == [weights_digest({k: v[-1] for k, v in result.weights(m).items()})
                                         for m in ("a", "b")]
    gaps = at.main.dataframe[2].value
    last = result.summary["compare"]["per_epoch"][-1]["layers"]
    assert dict(zip(gaps["variable"], gaps["max |A-B|"])) == {k: d["max_abs"] for k, d in last.items()}
    environment = json.loads(at.json[0].value)
    assert environment["A"]["machine"]["simd"] == result.summary["a"]["effective"]["machine"]["simd"]
    assert environment["libraries"]["tensorflow"] == result.summary["versions"]["tensorflow"]


def test_reproduce_page_hands_over_the_csv_a_pair_was_trained_on(app_test_pages, standin_workers, tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("x1,x2,label\n" + "".join(f"{i},{(i * 7) % 5},{i % 2}\n" for i in range(60)))
    at = _app()
    at.run()
    at.session_state[sidebar.STORE]["data.csv_path"] = str(table)  # where the uploader saves a file
    _set(at, **{"data.dataset": "csv", "a.training.epochs": 1})
    _click_run(at)
    at.switch_page("pages/reproduce.py").run()
    assert not at.exception
    assert any(str(table) in i.value for i in at.info)
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the CSV" in labels and "Download divergence_pair.py" in labels


def test_run_waits_for_a_csv_and_a_vanished_file_is_a_clear_error(app_test_pages, tmp_path):
    at = _app()
    at.run()
    run_button = lambda: at.sidebar.button(key="run")  # noqa: E731
    assert not run_button().disabled
    _set(at, **{"data.dataset": "csv"})
    assert run_button().disabled and any("Upload a CSV" in i.value for i in at.info)
    table = tmp_path / "t.csv"
    table.write_text("a,label\n" + "\n".join(f"{i},{i % 2}" for i in range(20)))
    at.session_state[sidebar.STORE]["data.csv_path"] = str(table)  # where the uploader saves a file
    at.run()
    assert not run_button().disabled and not at.exception
    table.unlink()
    at.run()
    assert any("no file at" in unescaped(e.value) for e in at.error)


def test_a_pair_that_cannot_be_repeated_is_trained_fresh_every_time(app_test_pages, pool):
    at = _run_scenario(_app(), "tf-seed-not-enough", epochs=1)
    first = at.session_state["result"]
    at.sidebar.button(key="run").click()
    at.run(timeout=300)
    again = at.session_state["result"]
    assert not at.exception and not again.cached
    kernel = "a/weights/dense_0/kernel"
    assert first.arrays[kernel][0].tobytes() != again.arrays[kernel][0].tobytes()  # another draw, as the scenario says
    reopened = _app(dict(at.query_params))  # the link serves the cached training, and says what it is
    reopened.run()
    assert reopened.session_state["result"].cached
    assert any("cannot be repeated" in i.value for i in reopened.info)


def test_train_fresh_retrains_a_repeatable_pair_to_the_same_bits(app_test_pages, standin_workers):
    from helpers import same_arrays

    at = _run_scenario(_app(), "run-it-twice", epochs=1)
    cached = at.session_state["result"]
    at.sidebar.button(key="run").click()
    at.run(timeout=300)
    assert at.session_state["result"].cached
    _set(at, **{"run.fresh": True})
    _click_run(at)
    fresh = at.session_state["result"]
    assert not fresh.cached and same_arrays(fresh, cached)


def test_the_training_status_says_what_each_run_did(app_test_pages, standin_workers):
    """A bar per run inside the status: a run trained before says it came from the cache (said before any job is
    handed out, drawn once the status is), a trained one its last epoch and loss; the status says how it ended."""

    def status_and_bars(at: AppTest) -> tuple[tuple[str, str], dict[str, str]]:
        (status,) = [block for block in at.main.children.values() if block.type == "status"]
        bars = [e.proto.text for e in status.children.values() if e.type == "progress"]
        return (status.label, status.state), {text.split(":")[0]: text for text in bars}

    at = _run_scenario(_app(), "adam-epsilon", epochs=1)
    (label, state), bars = status_and_bars(at)
    assert (label, state) == ("Training done", "complete")
    assert bars["A"].startswith("A: epoch 1/1, loss ") and bars["B"].startswith("B: epoch 1/1, loss ")
    _set(at, **{"b.optimizer.epsilon": 1e-6})
    _click_run(at)
    (label, state), bars = status_and_bars(at)
    assert (label, state) == ("Training done", "complete")
    assert bars["A"] == "A: trained before, taken from the cache" and bars["B"].startswith("B: epoch 1/1, loss ")
    _click_run(at)
    (label, state), bars = status_and_bars(at)
    assert (label, state) == ("Served from the cache", "complete")
    assert {bars[m] for m in "AB"} == {f"{m}: trained before, taken from the cache" for m in "AB"}


def test_the_scenario_travels_in_the_link_and_shows_when_it_was_edited(app_test_pages):
    at = _app()
    at.run()
    at.sidebar.selectbox(key="scenario").set_value("run-it-twice")
    at.run()
    params = {k: at.query_params[k] for k in at.query_params}
    assert params == {"scenario": "run-it-twice", "init": "none"}  # a pair of nothing but defaults, named
    reopened = _app(params)
    reopened.run()
    assert not reopened.exception and not reopened.warning
    assert reopened.session_state["scenario"] == "run-it-twice"
    assert state.from_state(reopened.session_state) == PRESETS["run-it-twice"].pair()
    assert reopened.sidebar.caption[0].value == PRESETS["run-it-twice"].description
    _set(reopened, **{"a.training.epochs": 3})
    assert reopened.sidebar.caption[0].value.startswith("**Edited** since it was loaded.")
    assert reopened.query_params["scenario"] == "run-it-twice" and reopened.query_params["a.training.epochs"] == "3"
    by_name = _app({"scenario": "batch-order"})  # a hand-written link with just the name
    by_name.run()
    assert state.from_state(by_name.session_state) == PRESETS["batch-order"].pair()


def test_the_articles_example_1_runs_in_one_process_with_its_facts_measured(app_test_pages, pool):
    at = _run_scenario(_app(), "two-models-one-process", epochs=1)
    result = at.session_state["result"]
    s = result.summary
    assert s["config"]["same_process"] and at.query_params["process"] == "one"
    diagnosis = s["diagnosis"]
    assert diagnosis["mechanism"] == "initial_weights"
    assert unescaped(at.main.markdown[0].value) == f"**Initial weights.** {diagnosis['sentence']}"
    assert "B is the second model built in A's process" in diagnosis["sentence"]
    # The article's facts, as this run measured them: one class, a second draw, optimizers apart only by name.
    shared = s["b"]["effective"]["same_process"]
    assert shared["same_class"] and shared["classes"] == ["keras.src.models.sequential.Sequential"] * 2
    assert [s[m]["effective"]["optimizer"]["name"] for m in "ab"] == ["adam", "adam_1"]
    assert "the two optimizers differ only in their name (adam, adam_1)" in diagnosis["sentence"]
    assert s["compare"]["first_divergent_epoch"] == 0
    code = at.code[0].value
    assert "np.random.seed(42)" in code and "model_b = tf.keras.Sequential" in code
    facts = " ".join(m.value for m in at.main.markdown)
    assert "one class for both: **yes**" in facts and "`adam`, `adam_1`" in facts
    at.switch_page("pages/reproduce.py").run()
    assert not at.exception and "the article's Example 1" in unescaped(at.error[0].value)


def test_two_backends_from_the_same_start_name_their_kernels_and_show_each_workers_framework(app_test_pages, pool):
    at = _run_scenario(_app(), "two-backends-aligned", epochs=2)
    s = at.session_state["result"].summary
    assert at.query_params["b.engine.name"] == "keras_torch"
    diagnosis = s["diagnosis"]
    assert diagnosis["mechanism"] == "numerics"
    assert unescaped(at.main.markdown[0].value) == f"**Kernels and numerics.** {diagnosis['sentence']}"
    last = s["compare"]["per_epoch"][-1]
    assert f"the weights differ by up to {last['max_abs']:.3g}" in diagnosis["sentence"]
    assert 0 < last["max_abs"] and s["compare"]["first_divergent_epoch"] >= 1
    environment = next(t.value for t in at.table if "setting" in t.value.columns).set_index("setting")
    assert environment.loc["frameworks imported"].tolist() == ["['tensorflow']", "['torch']"]
    assert environment.loc["torch version", "B"] == s["b"]["versions"]["torch"]
    assert environment.loc["predict"].tolist() == ["model.predict(x), batches of 32"] * 2
    # PyTorch's threads as a plain script leaves them, one per physical core, read back from the worker
    assert environment.loc["intra_op_threads", "B"] == str(psutil.cpu_count(logical=False))
    assert any(m.value.startswith("Unlike a plain script of its framework: A and B: batches in a NumPy permutation "
                                  "per epoch") for m in at.main.markdown)
    at.switch_page("pages/reproduce.py").run()  # the script covers both engines (tests/test_export.py runs it)
    assert not at.exception and not at.error
    assert '"KERAS_BACKEND": "torch"' in at.code[0].value and "def train_keras(" in at.code[0].value
