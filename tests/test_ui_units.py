"""URL state, tables and chart builders, without a server (pure functions)."""

import re

import numpy as np
import pandas as pd
import pytest

from core.config import DataConfig, RunConfig
from core.factors import make_pair
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
    assert spec["mark"]["type"] == "line" and spec["encoding"]["strokeDash"]["field"] == "split"
    assert spec["encoding"]["color"]["field"] == "model" and spec["encoding"]["y"]["scale"]["type"] == "log"
    assert charts.gap_per_epoch(tables.gaps(hist)).to_dict()["mark"]["type"] == "bar"
    hist_spec = charts.histogram_overlay(tables.weight_values(r, "dense_0/kernel", 0), "init").to_dict()
    assert hist_spec["encoding"]["x"]["bin"] == {"maxbins": 50}
    scatter = charts.scatter_a_vs_b(tables.predictions(r)).to_dict()
    assert [layer["mark"]["type"] for layer in scatter["layer"]] == ["line", "circle"]
    grid = pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.0, 1.0], "A": [0.2, 0.9], "B": [0.1, 0.8], "disagree": [0, 1]})
    assert charts.decision_map(grid, "A", "A").to_dict()["mark"]["type"] == "rect"
    series = pd.DataFrame({"step": [0, 0, 0], "source": ["truth", "A", "B"], "value": [1.0, 1.1, 0.9]})
    assert charts.forecast(series).to_dict()["encoding"]["color"]["scale"]["domain"] == ["truth", "A", "B"]


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
