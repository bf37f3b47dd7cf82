"""Attribution, noise floor and run-it-twice, checked against runs made by hand: the arithmetic with framework-free
workers (standin_worker.py), what only real frameworks show (each preset's staircase, unseeded runs) with real ones."""

import pytest

from core import analysis
from core.config import DataConfig
from core.export import pair_not_reproducible
from core.factors import make_pair, parse_run
from core.pair import run_pair
from core.presets import PRESETS, preset

MOONS = DataConfig(dataset="moons", n_samples=200)


def test_adam_epsilon_is_the_whole_gap(standin_pool):
    pool = standin_pool
    pair = preset("adam-epsilon").pair(epochs=3)
    plan = analysis.attribution_plan(pair)
    assert sorted(plan) == ["A", "A+optimizer.epsilon", "B", "B-optimizer.epsilon"]
    result = analysis.attribution(pair, analysis.execute(pair, plan, pool))
    (row,) = result["factors"]
    assert row["factor"] == "optimizer.epsilon"
    assert row["prediction_share"] == 1.0 and row["weights_share"] == 1.0
    assert result["interacts"] == {"prediction": False, "weights": False}


def test_two_factor_shares_come_from_the_runs_made_by_hand(standin_pool):
    pool = standin_pool
    a = parse_run({"training": {"epochs": 3}})
    pair = make_pair(MOONS, a, {"optimizer.epsilon": 1e-8, "optimizer.learning_rate": 0.01}, True)
    result = analysis.attribution(pair, analysis.execute(pair, analysis.attribution_plan(pair), pool))
    total = run_pair(pair, pool, cache=False, checks=False).summary["compare"]["prediction_rms_delta"]
    assert result["total"]["prediction"] == total
    by_hand = {}
    for path, value in pair.b_differs:
        on_in_a = run_pair(make_pair(MOONS, a, {path: value}, True), pool, cache=False, checks=False)
        off_in_b = run_pair(make_pair(MOONS, pair.b, {path: a.get(path)}, True), pool, cache=False,
                            checks=False)
        by_hand[path] = (on_in_a.summary["compare"]["prediction_rms_delta"]
                         + off_in_b.summary["compare"]["prediction_rms_delta"]) / 2 / total
    assert {f["factor"]: f["prediction_share"] for f in result["factors"]} == by_hand


def test_noise_floor_and_run_twice(pool):
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}}), {"optimizer.learning_rate": 0.01})
    plan = analysis.noise_plan(pair, 2)
    assert sorted(plan) == ["A", "A seed 1", "A seed 2"]
    floor = analysis.noise_floor(pair, analysis.execute(pair, plan, pool), 0.5)
    assert len(floor["noise"]) == 2 and all(n > 0 for n in floor["noise"].values())
    assert floor["ratio"] == 0.5 / floor["median"]
    twice = analysis.run_twice(analysis.execute(pair, analysis.run_twice_plan(pair), pool))
    assert twice["bitwise_identical"] and twice["first_divergent_epoch"] is None and twice["variables"] == []
    assert twice["settings"]["intra_op_threads"] == "0: TensorFlow picks (its default)"


def test_run_twice_names_where_an_unseeded_run_splits(pool):
    pair = preset("tf-seed-not-enough").pair(epochs=1)
    twice = analysis.run_twice(analysis.execute(pair, analysis.run_twice_plan(pair), pool))
    assert not twice["bitwise_identical"] and twice["first_divergent_epoch"] == 0
    assert "dense_0/kernel" in twice["variables"]


def test_the_staircase_ends_at_the_run_it_twice_level(standin_pool):
    pool = standin_pool
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}}),
                     {"optimizer.epsilon": 1e-8, "optimizer.learning_rate": 0.01, "preprocess.scaler": "minmax"}, True)
    order = ["optimizer.learning_rate", "preprocess.scaler", "optimizer.epsilon"]
    plan = analysis.staircase_plan(pair, order)
    assert plan[f"step {len(order)}"].run == pair.a and plan["step 0"].run == pair.b
    outcomes = analysis.execute(pair, {**plan, **analysis.run_twice_plan(pair)}, pool)
    twice = analysis.run_twice({k: outcomes[k] for k in ("A", "A again")})
    stairs = analysis.staircase(order, outcomes, twice)
    gaps = [s["prediction"] for s in stairs["steps"]]
    assert gaps[0] > 0 and gaps[-1] == 0.0 and stairs["steps"][-1]["bitwise_equal"]
    assert stairs["lands_on_run_twice_level"]
    assert [s["aligned"] for s in stairs["steps"]] == ["nothing yet", *order]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_presets_staircase_ends_at_the_run_it_twice_level(pool, shared_cache, name):
    """With every factor aligned nothing the factor list models is left to differ (on CPU). Real runs: A, B
    and A again are those of the preset's verdict in test_mechanisms (the same epochs, one cache)."""
    pair = preset(name).pair(epochs=2)
    order = [path for path, _ in pair.b_differs]
    outcomes = analysis.execute(pair, {**analysis.staircase_plan(pair, order), **analysis.run_twice_plan(pair)}, pool,
                                cache=shared_cache)
    twice = analysis.run_twice({k: outcomes[k] for k in ("A", "A again")})
    stairs = analysis.staircase(order, outcomes, twice)
    if twice["bitwise_identical"]:
        assert stairs["lands_on_run_twice_level"], stairs
        assert stairs["steps"][-1]["bitwise_equal"] and stairs["steps"][-1]["prediction"] == 0.0
    else:  # an unseeded A: the last step and A again are two draws of one noise, either may be the larger
        assert pair_not_reproducible(pair), name
        assert not stairs["steps"][-1]["bitwise_equal"]


def test_staircase_order_follows_the_shares():
    result = {"factors": [{"factor": "x", "prediction_share": 0.2}, {"factor": "y", "prediction_share": 0.7},
                          {"factor": "z", "prediction_share": None}]}
    assert analysis.staircase_order(result) == ["y", "x", "z"]
