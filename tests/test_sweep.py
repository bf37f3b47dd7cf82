"""Sweeps: one factor over values and seeds against the seed-noise band (core.sweep, the CLI, the page)."""

import csv
import io
import itertools
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import analysis, sweep
from core.batch import RunCache
from core.config import ConfigError, DataConfig
from core.factors import make_pair, parse_run
from helpers import open_sections, unescaped
from ui import charts

MOONS = DataConfig(dataset="moons", n_samples=200)


def _pair(epochs=2, **a):
    return make_pair(MOONS, parse_run({"training": {"epochs": epochs}, **a}), {"optimizer.epsilon": 1e-3}, True)


def test_a_sweep_is_checked_before_anything_trains():
    pair = _pair()
    for args, message in [
        (("optimizer.epsilon", [1e-3], 1), "seeds: 1 is out of range"),
        (("optimizer.nope", [1], 3), "unknown factor"),
        (("seeding.seed", [1, 2], 3), "sweep seeds only instead"),
        (("model.hidden", [[8]], 3), "takes several numbers at once"),
        (("optimizer.epsilon", [-1.0], 3), "values (optimizer.epsilon): -1.0 is out of range"),
        (("optimizer.epsilon", [], 3), "give 1 to 40 values"),
        (("optimizer.epsilon", [1e-3 * k for k in range(1, 40)], 50), "at most 1000"),
        (("numerics.onednn", ["on"], 3), None),  # Keras 3 on TensorFlow honours oneDNN
    ]:
        if message is None:
            assert sweep.make_sweep(pair, *args).runs == 6
            continue
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            sweep.make_sweep(pair, *args)
    assert "numerics.onednn" in sweep.sweepable("keras") and "numerics.onednn" not in sweep.sweepable("keras_jax")
    assert "model.hidden" not in sweep.sweepable("keras") and "seeding.seed" not in sweep.sweepable("keras")
    jax = _pair(engine={"name": "keras_jax"})
    with pytest.raises(ConfigError, match="keras_jax engine does not use numerics.onednn"):
        sweep.make_sweep(jax, "numerics.onednn", ["on"], 3)
    cnn_raw = _pair(engine={"name": "tensorflow"})
    with pytest.raises(ConfigError, match="dense networks"):
        sweep.make_sweep(cnn_raw, "model.kind", ["cnn"], 3)


def test_values_as_typed_and_as_ranges():
    assert sweep.parse_values("optimizer.epsilon", "1e-3, 1e-4,,") == [1e-3, 1e-4]
    assert sweep.parse_values("numerics.op_determinism", "on, Off") == [True, False]
    assert sweep.parse_values("model.activation", "relu, tanh") == ["relu", "tanh"]
    eps = sweep.value_range("optimizer.epsilon", 1e-3, 1e-10, 8)
    assert eps == [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]
    assert np.allclose(eps, np.geomspace(1e-3, 1e-10, 8), rtol=1e-6)  # log-spaced, as NumPy spaces them
    assert sweep.value_range("training.batch_size", 8, 64, 3) == [8, 36, 64]  # whole numbers, evenly spaced
    with pytest.raises(ConfigError, match="not a number"):
        sweep.value_range("model.activation", 1, 2, 3)


def test_the_plan_repeats_a_and_each_value_over_the_seeds():
    pair = _pair()
    s = sweep.make_sweep(pair, "optimizer.epsilon", [1e-1, 1e-7], 3)  # 1e-7 is A's own value
    plan = sweep.sweep_plan(pair, s)
    assert list(plan)[:3] == ["A", "A seed 1", "A seed 2"]  # the noise floor's plan, which the Attribution page runs
    assert plan == {**analysis.noise_plan(pair, 2), **{k: v for k, v in plan.items() if "epsilon" in k}}
    swept = {k: v for k, v in plan.items() if k not in ("A", "A seed 1", "A seed 2")}
    assert sorted(swept) == [f"optimizer.epsilon = 0.1, seed {i}" for i in range(3)]  # A's own value trains nothing
    for i, name in enumerate(sorted(swept)):
        assert swept[name].init_from == sweep.seed_name(pair, i)  # B starts from A's initial weights: so does each
        assert swept[name].run == plan[sweep.seed_name(pair, i)].run.with_value("optimizer.epsilon", 1e-1)


@pytest.fixture(scope="module")
def moons_sweep(standin_pool, tmp_path_factory):
    pair = _pair()
    s = sweep.make_sweep(pair, "optimizer.epsilon", [1e-1, 1e-7], 3)
    outcomes = analysis.execute(pair, sweep.sweep_plan(pair, s), standin_pool,
                                cache=RunCache(tmp_path_factory.mktemp("sweep")))
    return pair, s, outcomes


def _rms(x, y):
    return float(np.sqrt(np.mean((x["predictions"][-1] - y["predictions"][-1]) ** 2)))


def test_the_gaps_and_the_band_are_the_runs_own_numbers(moons_sweep):
    pair, s, outcomes = moons_sweep
    result = sweep.sweep_result(pair, s, outcomes)
    seeds = ["A", "A seed 1", "A seed 2"]
    noise = [_rms(outcomes[x], outcomes[y]) for x, y in itertools.combinations(seeds, 2)]
    band = result["band"]["prediction"]
    assert band["n"] == 3 and np.isclose(band["high"], max(noise)) and np.isclose(band["median"], np.median(noise))
    big = [_rms(outcomes[seeds[i]], outcomes[f"optimizer.epsilon = 0.1, seed {i}"]) for i in range(3)]
    assert [r["prediction"] for r in result["rows"] if r["value"] == 0.1] == pytest.approx(big)
    assert [r["prediction"] for r in result["rows"] if r["value"] == 1e-7] == [0.0, 0.0, 0.0]
    first, own = result["values"]
    assert first["prediction_median"] == pytest.approx(np.median(big)) and first["seeds"] == 3
    assert first["outside_band"] == (np.median(big) > max(noise)) and own["outside_band"] is False
    assert result["outside"] == (["0.1"] if first["outside_band"] else [])
    sentence = sweep.verdict(s, result)
    assert f"{band['high']:.3g}" in sentence and "over 3 pairs of seeds" in sentence
    rows = list(csv.DictReader(io.StringIO(sweep.to_csv(result))))
    assert [r["kind"] for r in rows] == ["value"] * 6 + ["seed noise"] * 3
    assert float(rows[-1]["prediction_rms_gap"]) == pytest.approx(noise[-1])


def test_a_sweep_stopped_halfway_draws_what_finished(moons_sweep):
    pair, s, outcomes = moons_sweep
    stopped = {**outcomes, "A seed 2": {"type": "error", "message": "cancelled", "cancelled": True}}
    result = sweep.sweep_result(pair, s, stopped)
    assert result["missing"] == ["A seed 2"] and result["band"]["prediction"]["n"] == 1
    assert {r["seed"] for r in result["rows"]} == {0, 1}  # seed 2's gaps need its A


def test_a_value_without_a_finished_run_is_not_said_to_be_within_the_noise(moons_sweep):
    pair, s, outcomes = moons_sweep
    cancelled = {"type": "error", "message": "cancelled", "cancelled": True}
    stopped = {**outcomes, **{name: cancelled for name in outcomes if name.startswith("optimizer.epsilon = 0.1")}}
    result = sweep.sweep_result(pair, s, stopped)
    big, own = result["values"]
    assert big["outside_band"] is None and big["seeds"] == 0 and own["outside_band"] is False
    sentence = sweep.verdict(s, result)
    assert sentence.startswith("Every value of epsilon with a finished run stays within the seed noise")
    assert sentence.endswith("over 3 pairs of seeds; no finished run to compare at epsilon = 0.1.")
    only_big = sweep.make_sweep(pair, "optimizer.epsilon", [1e-1], 3)  # the same runs, without A's own value
    nothing = sweep.sweep_result(pair, only_big, {k: v for k, v in stopped.items() if "1e-07" not in k})
    assert sweep.verdict(only_big, nothing).startswith(
        "No value of epsilon has a finished run to compare with the seed noise; seed noise (A against A")


def test_the_command_line_sweeps_and_writes_the_csv(standin_workers, tmp_path, capsys):
    from core.__main__ import main

    out = tmp_path / "out"
    code = main(["sweep", "--preset", "adam-epsilon", "--epochs", "1", "--factor", "optimizer.epsilon",
                 "--values", "1e-7", "--seeds", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "2 runs: 2 seeds x (1 value + A)" in printed and "optimizer.epsilon = 1e-07: median gap 0" in printed
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    assert [(r["kind"], r["seeds"]) for r in rows] == [("value", "0"), ("value", "1"), ("seed noise", "A / A seed 1")]
    assert float(rows[2]["prediction_rms_gap"]) > 0  # two seeds draw two different networks
    assert main(["sweep", "--preset", "adam-epsilon", "--factor", "optimizer.epsilon", "--range", "1e-3:x:3",
                 "--out", str(out)]) == 2
    assert "is not START:STOP:COUNT" in capsys.readouterr().err


def test_the_sweep_page_runs_a_sweep_and_draws_it(standin_workers, app_test_pages):
    at = open_sections(AppTest.from_file("../app.py", default_timeout=60))
    at.run()
    at.sidebar.number_input(key="a.training.epochs").set_value(1)
    at.run()
    at.switch_page("pages/sweep.py").run()
    assert not at.exception and not at.error
    assert at.selectbox[0].value == "optimizer.epsilon"  # the factor B differs in (the default scenario's)
    at.number_input[0].set_value(2).run()  # seeds
    count = next(n for n in at.number_input if n.label == "Values")
    count.set_value(2).run()
    assert any("2 seeds x (2 values + A) = 6 runs" in m.value for m in at.markdown)
    next(b for b in at.button if b.label == "Run the sweep").click().run(timeout=300)
    assert not at.exception and not at.error
    verdict = [m.value for m in at.markdown if "seed noise (A against A with another seed) spans" in unescaped(m.value)]
    assert len(verdict) == 1
    assert len(at.get("vega_lite_chart")) == 1 and len(at.dataframe[0].value) == 2
    assert at.dataframe[0].value["label"].tolist() == ["0.001", "1e-10"]
    # as the chart's subtitle says: the medians in red, points and line; decades written alike (1e-10 ... 1e-3)
    layers = json.loads(at.get("vega_lite_chart")[0].proto.spec)["layer"]
    line = next(layer for layer in layers if layer["mark"]["type"] == "line")
    assert line["mark"]["color"] == line["mark"]["point"]["color"] == charts.PAIR_COLOR
    assert line["encoding"]["x"]["axis"]["format"] == "~e"
