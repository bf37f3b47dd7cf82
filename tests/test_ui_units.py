"""URL state, tables and chart builders, without a server (pure functions)."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from core.config import DataConfig, RunConfig
from core.factors import format_value, make_pair, parse_run
from core.pair import PairResult
from core.presets import PRESETS, default_pair
from core.compare import compare_runs
from ui import charts, state, tables
from helpers import unescaped
from ui.text import plain


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_survives_the_url_and_the_widgets(name):
    pair = PRESETS[name].pair(epochs=7)
    again, warnings = state.from_params(state.to_params(pair))
    assert again == pair and warnings == []
    assert state.from_state(state.to_state(pair)) == pair


def test_links_are_short_and_readable():
    params = state.to_params(PRESETS["adam-epsilon"].pair())
    assert params == {"b.optimizer.epsilon": "1e-08", "init": "a"}
    assert state.from_params({}) == (default_pair(), [])


@pytest.mark.parametrize("name", list(PRESETS))
def test_the_share_link_of_a_scenario_as_loaded_names_it(name):
    """The Reproduce page's link for a result: a scenario as loaded opens with its name (and its description) in
    the sidebar; an edited one as the pair alone."""
    pair = PRESETS[name].pair()
    params = state.to_params(pair, state.scenario_of(pair))
    assert state.scenario_in(params) == name and state.from_params(params) == (pair, [])
    assert state.scenario_of(PRESETS[name].pair(epochs=7)) is None


def test_bad_link_parameters_fall_back_with_warnings():
    pair, warnings = state.from_params({"a.training.epochs": "2.5", "a.model.hidden": "64,x", "b.engine.name": "jax",
                                        "data.dataset": "moons", "what": "ever", "a.numerics.op_determinism": "on"})
    assert pair.a.training.epochs == 20 and pair.a.model.hidden == (64, 32) and pair.b_differs == ()
    assert pair.data.dataset == "moons" and pair.a.numerics.op_determinism is True
    assert len(warnings) == 4
    assert any("a.training.epochs" in w and "expected an integer" in w for w in warnings)
    assert any("'what'" in w for w in warnings)


def test_a_link_to_a_pair_that_cannot_run_shows_the_default():
    pair, warnings = state.from_params({"a.model.kind": "cnn", "data.dataset": "moons"})
    assert pair == default_pair() and "cannot run" in warnings[-1]


def _result(task="classification"):
    """A hand-made result: two epochs, known numbers."""
    wa = {"dense_0/kernel": np.array([[[0.0, 1.0]], [[0.5, 1.0]], [[1.0, 1.0]]], dtype=np.float32)}
    wb = {"dense_0/kernel": np.array([[[0.0, 1.0]], [[0.5, 1.5]], [[1.0, 3.0]]], dtype=np.float32)}
    pa = np.array([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.2, 0.8]], [[0.9, 0.1], [0.3, 0.7]]])
    pb = np.array([[[0.5, 0.5], [0.5, 0.5]], [[0.8, 0.2], [0.6, 0.4]], [[0.8, 0.2], [0.6, 0.4]]])
    from core.compare import compare_runs

    hist = [{"epoch": e, "loss": 1.0 / e, "metric": 0.5, "test_loss": 2.0 / e, "test_metric": 0.5} for e in (1, 2)]
    hist_b = [{**h, "loss": h["loss"] + 0.25} for h in hist]
    pair = make_pair(DataConfig(), RunConfig(), {"optimizer.epsilon": 1e-8})
    summary = {"config": pair.to_dict(), "data": {"task": task, "n_test": 2, "description": "hand-made"},
               "a": {"status": "ok", "message": "", "history": hist, "recorded_epochs": [0, 1, 2]},
               "b": {"status": "ok", "message": "", "history": hist_b, "recorded_epochs": [0, 1, 2]},
               "compare": compare_runs(wa, wb, pa, pb, task)}
    arrays = {"a/weights/dense_0/kernel": wa["dense_0/kernel"], "b/weights/dense_0/kernel": wb["dense_0/kernel"],
              "a/predictions": pa, "b/predictions": pb, "data/y_test": np.array([0, 1])}
    return PairResult(summary, arrays)


def test_tables_read_the_result():
    r = _result()
    hist = tables.history(r)
    assert len(hist) == 8 and set(hist["model"]) == {"A", "B"}
    gaps = tables.gaps(hist)
    assert gaps[gaps["split"] == "train"]["gap"].tolist() == [-0.25, -0.25]
    preds = tables.predictions(r)
    assert preds["a"].tolist() == [0.9, 0.7] and preds["b"].tolist() == [0.8, 0.4]
    assert preds["differs"].tolist() == [False, True] and np.allclose(preds["delta"], [0.1, 0.3])
    d = tables.distances(r)
    last = d[(d["epoch"] == 2) & (d["layer"] == "dense_0/kernel")].iloc[0]
    assert last["l2"] == pytest.approx(2.0) and last["max_abs"] == pytest.approx(2.0)
    assert tables.what_differs(r.summary["config"])[["factor", "A", "B"]].values.tolist() == [
        ["epsilon", "1e-07", "1e-08"]]
    sentences = tables.verdict(r)
    assert sentences[0] == "The weights first differ after epoch 1."
    assert sentences[1] == "1 of 2 test predictions change class (50.0%); the largest probability gap is 0.3."


def test_identical_runs_get_the_identical_verdict():
    r = _result()
    r.summary["compare"] = {**r.summary["compare"], "weights_bitwise_equal": True, "predictions_bitwise_equal": True}
    assert tables.verdict(r) == ["A and B are bitwise identical: every weight after every epoch and every test "
                                 "prediction."]


def test_chart_builders_encode_the_fields_they_promise():
    r = _result()
    hist = tables.history(r)
    spec = charts.loss_curves(hist, "loss", log_scale=True).to_dict()
    lines = [layer for layer in spec["layer"] if layer["mark"]["type"] == "line"]
    assert len(lines) == 2 and all(layer["encoding"]["strokeDash"]["field"] == "split" for layer in lines)
    assert lines[0]["encoding"]["color"]["field"] == "model" and lines[0]["encoding"]["y"]["scale"]["type"] == "log"
    assert charts.gap_per_epoch(tables.gaps(hist)).to_dict()["mark"]["type"] == "bar"
    hist_spec = charts.histogram_overlay(tables.weight_values(r, "dense_0/kernel", 0), "init").to_dict()
    assert [layer["transform"][0]["bin"] for layer in hist_spec["layer"]] == [{"maxbins": 50}] * 2
    scatter = charts.scatter_a_vs_b(tables.predictions(r)).to_dict()
    assert [layer["mark"]["type"] for layer in scatter["layer"]] == ["line", "circle"]
    grid = pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.0, 1.0], "A": [0.2, 0.9], "B": [0.1, 0.8], "disagree": [0, 1]})
    assert charts.decision_map(grid, "A", "A").to_dict()["mark"]["type"] == "rect"
    series = pd.DataFrame({"step": [0, 0, 0], "source": ["truth", "A", "B"], "value": [1.0, 1.1, 0.9]})
    forecast = charts.forecast(series).to_dict()
    assert [layer["encoding"]["color"]["scale"]["domain"] for layer in forecast["layer"]] == [["truth", "A", "B"]] * 3


def _spec(chart) -> dict:
    """The Vega-Lite spec without its data rows."""
    spec = chart.to_dict()
    spec.pop("datasets", None)
    return spec


def _units(spec: dict) -> list[dict]:
    """Every view that draws a mark, however deep in layers."""
    return [spec] if "mark" in spec else [unit for layer in spec.get("layer", []) for unit in _units(layer)]


def _colour_maps(spec: dict, fields=("model", "source")) -> list[dict]:
    """Category -> colour of every colour or stroke encoding of one of `fields`."""
    return [dict(zip(enc["scale"]["domain"], enc["scale"]["range"])) for unit in _units(spec)
            for channel in ("color", "stroke") if (enc := unit.get("encoding", {}).get(channel))
            and enc.get("field") in fields]


def _titles(spec) -> list[str]:
    """Every title (axis, legend, chart) anywhere in a spec, lines joined."""
    if isinstance(spec, list):
        return [t for item in spec for t in _titles(item)]
    if not isinstance(spec, dict):
        return []
    out = []
    for key, value in spec.items():
        if key in ("title", "subtitle") and value:
            text = value.get("text", "") if isinstance(value, dict) else value
            out.append(" ".join(text) if isinstance(text, list) else text)
        out += _titles(value)
    return out


def _all_charts(r) -> tuple[dict, dict]:
    """Every chart builder on real frames: (charts that show A and B, charts that show something else)."""
    hist = tables.history(r)
    d = tables.distances(r)
    series = pd.DataFrame({"step": [0, 1] * 3, "source": ["truth"] * 2 + ["A"] * 2 + ["B"] * 2,
                           "value": [1.0, 2.0, 1.1, 2.1, 1.1, 2.1]})
    grid = pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.0, 1.0], "A": [0.2, 0.9], "B": [0.1, 0.8], "disagree": [0, 1]})
    steps = pd.DataFrame({"step": [0, 1], "aligned": ["nothing yet", "optimizer.epsilon"], "prediction": [0.3, 0.0],
                          "bitwise_equal": [False, True]})
    shares = pd.DataFrame({"factor": ["epsilon"] * 2, "measure": ["prediction", "weights"], "share": [1.0, 1.0]})
    model = {"loss": charts.loss_curves(hist),
             "weights": charts.histogram_overlay(tables.weight_values(r, "dense_0/kernel", -1), "last"),
             "forecast": charts.forecast(series)}
    other = {"gap": charts.gap_per_epoch(tables.gaps(hist)),
             "distance": charts.weight_distance(d[d["layer"] != "all weights"]),
             "glance": charts.weight_distance(d[d["layer"] == "all weights"], log_scale=True),
             "delta": charts.histogram(tables.weight_delta(r, "dense_0/kernel", -1), "A − B", "A − B"),
             "scatter": charts.scatter_a_vs_b(tables.predictions(r)), "map": charts.decision_map(grid, "A", "A"),
             "disagree": charts.decision_map(grid, "disagree", "differ"), "shares": charts.attribution_shares(shares),
             "noise": charts.noise_floor(pd.DataFrame({"run": ["A seed 2"], "gap": [0.1]}), 0.3),
             "staircase": charts.staircase(steps)}
    return {"live": charts.live_loss_spec(), **{k: _spec(c) for k, c in model.items()}}, \
        {k: _spec(c) for k, c in other.items()}


def test_blue_and_orange_mean_a_and_b_everywhere_and_nothing_else():
    model, other = _all_charts(_result())
    for name, spec in model.items():
        maps = _colour_maps(spec)
        assert maps, name
        assert all(m["A"] == "#1f77b4" and m["B"] == "#ff7f0e" for m in maps), name
    for name, spec in other.items():
        text = json.dumps(spec).lower()
        assert "#1f77b4" not in text and "#ff7f0e" not in text, name
    # Streamlit's theme fills any colour left open with its own blue: every mark says its colour.
    for name, spec in {**model, **other}.items():
        for unit in _units(spec):
            enc = unit.get("encoding", {})
            explicit = "color" in unit["mark"] or any("range" in enc[c].get("scale", {}) or "scheme" in enc[c].get(
                "scale", {}) for c in ("color", "stroke") if c in enc)
            assert explicit, (name, unit["mark"])


def test_coinciding_curves_stay_visible_and_the_legends_tell_what_they_show():
    hist = tables.history(_result())
    hist.loc[hist["model"] == "B", "loss"] = hist.loc[hist["model"] == "A", "loss"].to_numpy()  # B exactly on A
    layers = _spec(charts.loss_curves(hist))["layer"]
    order = [(layer["transform"][0]["filter"], layer["mark"]["type"]) for layer in layers]
    assert order == [("(datum.model === 'A')", "line"), ("(datum.model === 'A')", "point"),
                     ("(datum.model === 'B')", "line"), ("(datum.model === 'B')", "point")]  # B drawn on top of A
    line = layers[0]["encoding"]
    widths = dict(zip(line["strokeWidth"]["scale"]["domain"], line["strokeWidth"]["scale"]["range"]))
    assert widths["A"] > 2 * widths["B"]  # B's line runs inside A's
    assert layers[1]["mark"]["filled"] is False and layers[3]["mark"]["filled"] is True  # a dot inside a ring
    assert line["color"]["legend"]["symbolType"] == line["strokeDash"]["legend"]["symbolType"] == "stroke"
    dashes = dict(zip(line["strokeDash"]["scale"]["domain"], line["strokeDash"]["scale"]["range"]))
    assert dashes == {"train": [1, 0], "test": [6, 4]}


def test_weight_distances_that_span_decades_get_a_log_axis_with_zero_labelled():
    rows = [{"epoch": 0, "layer": "all weights", "l2": 0.0}] + [
        {"epoch": e, "layer": "all weights", "l2": 3e-7 * 10 ** e} for e in range(1, 7)]
    spec = _spec(charts.weight_distance(pd.DataFrame(rows)))
    lines, equal, rule, label = spec["layer"]
    assert lines["encoding"]["y"]["scale"]["type"] == "log" and lines["transform"] == [{"filter": "(datum['l2'] > 0)"}]
    assert equal["encoding"]["y"] == rule["encoding"]["y"] == label["encoding"]["y"] == {"datum": 1e-7}
    assert label["mark"]["type"] == "text" and label["encoding"]["text"]["field"] == "label"
    datasets = charts.weight_distance(pd.DataFrame(rows)).to_dict()["datasets"].values()
    assert [row["label"] for rows in datasets for row in rows if "label" in row] == ["bitwise equal (0)"]
    assert [row["epoch"] for rows in datasets for row in rows if row.get("l2") == 0.0] == [0, 0]  # line + marker
    # the hand-made result's distances stay within a decade: linear, unless asked
    d = tables.distances(_result())
    assert _spec(charts.weight_distance(d))["encoding"]["y"]["scale"]["type"] == "linear"
    asked = _spec(charts.weight_distance(d, "l2", log_scale=True))
    assert asked["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    assert _spec(charts.weight_distance(d, "cosine", log_scale=True))["encoding"]["y"]["scale"]["type"] == "linear"
    assert charts.spans_decades(pd.Series([0.0, 1e-7, 0.2, np.nan])) and not charts.spans_decades(pd.Series([0.1, 3.0]))
    assert not charts.spans_decades(pd.Series([-1.0, 1e-7, 0.2])) and not charts.spans_decades(pd.Series([0.0, 0.0]))


def test_staircase_steps_say_factor_labels_and_bitwise_equal():
    from core import analysis

    def run(value: float) -> dict:
        w = {"dense/kernel": np.array([[1.0, 2.0], [1.0, value]])}
        return {"type": "result", "task": "regression", "weights": w, "recorded_epochs": [0, 1],
                "predictions": np.array([[[0.0], [0.0]], [[1.0], [value]]])}

    outcomes = {"A": run(2.0), "step 0": run(3.0), "step 1": run(2.5), "step 2": run(2.0)}
    stairs = analysis.staircase(["engine.name", "numerics.dtype"], outcomes, {"bitwise_identical": True})
    shown = charts.staircase(pd.DataFrame(stairs["steps"])).to_dict()
    rows = next(iter(shown["datasets"].values()))
    assert [row["label"] for row in rows] == ["B as is", "+ Engine", "+ Compute dtype"]
    assert [row["note"] for row in rows] == [f"{np.sqrt(0.5):.3g}", f"{np.sqrt(0.125):.3g}", "bitwise equal"]
    assert shown["layer"][0]["encoding"]["x"]["field"] == "label"


def test_noise_floor_labels_its_rule_and_says_what_the_dots_are():
    spec = _spec(charts.noise_floor(pd.DataFrame({"run": ["A seed 43", "A seed 44"], "gap": [0.02, 0.03]}), 0.011))
    dots, rule, label = spec["layer"]
    assert rule["mark"]["type"] == "rule" and label["mark"]["type"] == "text"
    assert label["encoding"]["text"]["field"] == "label" and label["encoding"]["x"]["field"] == "gap"
    assert label["mark"]["color"] == rule["mark"]["color"] != dots["mark"]["color"]
    assert "grey dots: A against A trained with another seed" in spec["title"]["subtitle"]


def test_each_word_for_a_difference_has_one_meaning():
    model, other = _all_charts(_result())
    titles = [t for spec in {**model, **other}.values() for t in _titles(spec)]
    assert not [t for t in titles if "gap" in t.lower()]  # "gap" meant the largest on one page, the RMS on another
    assert other["noise"]["layer"][0]["encoding"]["x"]["title"] == "RMS difference of test predictions to A"
    assert other["staircase"]["layer"][0]["encoding"]["y"]["title"] == ["RMS difference of test predictions", "to A"]
    assert other["shares"]["encoding"]["color"]["scale"]["domain"] == [
        "RMS difference of test predictions", "L2 distance of all weights after the last epoch"]


def test_gaps_skip_epochs_where_a_run_went_non_finite():
    r = _result()
    r.summary["a"]["history"][1]["loss"] = float("nan")
    gaps = tables.gaps(tables.history(r))
    assert gaps[gaps["split"] == "train"]["epoch"].tolist() == [1]
    assert len(gaps[gaps["split"] == "test"]) == 2


def test_verdict_says_when_a_run_diverged_and_what_its_nan_predictions_leave_to_compare():
    r = _result()
    r.summary["b"].update(status="diverged", diverged_epoch=2, message="diverged at epoch 2: the loss became non-finite")
    r.arrays["b/predictions"] = r.arrays["b/predictions"].copy()
    r.arrays["b/predictions"][2, 1] = np.nan
    r.summary["compare"] = compare_runs(r.weights("a"), r.weights("b"), r.prediction_history("a"),
                                        r.prediction_history("b"), "classification")
    sentences = tables.verdict(r)
    assert sentences[0] == "B diverged at epoch 2: the loss became non-finite; its record ends there."
    assert sentences[2] == ("B's final predictions are not finite for 1 of 2 test samples; the gaps count only the 1 "
                            "samples both models predict.")
    assert sentences[3].startswith("0 of 1 test predictions change class")  # sample 1's NaN is no class
    assert tables.predictions(r)["differs"].tolist() == [False, False]


def test_plain_text_escapes_every_markdown_character_and_stays_short():
    hostile = "![px](http://127.0.0.1:9/p.png) [log in](www.x.org) **b** <img src=x> $x$ :red[y] `c` me@x.org ``d"
    escaped = plain(hostile)
    assert unescaped(escaped) == hostile
    outside_code = re.sub(r"(`+) ?.*? ?\1", "", escaped)
    assert not re.search(r"(?<!\\)[\[\]()<>*`$:!]", outside_code)  # no markup character left bare
    assert not re.search(r"://|www\.|@", outside_code)  # nothing left to autolink
    long = plain("x" * 100_000)
    assert len(long) < 400 and long.endswith("characters\\)")


def test_a_pair_built_in_one_process_travels_in_the_link():
    pair = PRESETS["two-models-one-process"].pair()
    params = state.to_params(pair)
    assert params["process"] == "one" and state.from_params(params) == (pair, [])
    assert state.from_state(state.to_state(pair)) == pair
    table = tables.what_differs(pair.to_dict())
    assert table["factor"].tolist() == ["Process"] and table["B"].tolist() == ["built next, in A's process"]


def test_the_overview_says_where_a_pair_is_set_up_unlike_a_plain_script():
    plain_setup = tables.plain_script_note(PRESETS["keras3-vs-tf-keras"].pair().to_dict())  # fit's own shuffle
    assert plain_setup.startswith("A and B shuffle, train and predict with their framework's own calls and thread")
    unshuffled = make_pair(DataConfig(), parse_run({"training": {"batch_order": "none"}}), {})
    assert "A and B: batches in the data's own order, unshuffled, where a plain fit shuffles" in \
        tables.plain_script_note(unshuffled.to_dict())
    pair = make_pair(DataConfig(), parse_run({"engine": {"name": "keras_torch"}, "numerics": {"intra_threads": 1}}),
                     {"engine.name": "keras_jax"})  # JAX has no threads factor: B runs at its default
    assert tables.plain_script_note(pair.to_dict()) == (
        "Unlike a plain script of its framework: A and B: batches in a NumPy permutation per epoch (seed 0), the same "
        "on every engine, where a plain fit shuffles with the framework's own generator · A: intra-op threads: 1, "
        "where a plain script leaves PyTorch's default. The script on the Reproduce page does the same, so compare "
        "your own script with that one.")
    assert tables.plain_script_note(PRESETS["two-models-one-process"].pair().to_dict()) == ""  # its code is shown
    assert format_value("numerics.intra_threads", 0) == "framework default"
    assert format_value("numerics.intra_threads", 2) == "2"
