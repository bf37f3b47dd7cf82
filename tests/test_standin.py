"""The stand-in worker the machinery tests run on: it learns, repeats itself bit for bit, and answers to its factors."""

from core.config import DataConfig
from core.factors import make_pair, parse_run
from core.pair import run_pair
from helpers import same_arrays

DIGITS = make_pair(DataConfig(), parse_run({"training": {"epochs": 5}}), {"optimizer.epsilon": 1e-3}, True)


def test_the_standin_learns_repeats_itself_and_answers_to_a_factor(standin_pool):
    first = run_pair(DIGITS, standin_pool, cache=False)  # with the diagnosis's runs (A again)
    again = run_pair(DIGITS, standin_pool, cache=False, checks=False)
    assert first.complete and same_arrays(first, again)
    a = first.summary["a"]["history"]
    assert a[-1]["loss"] < a[0]["loss"] and a[-1]["test_metric"] > 0.9  # digits, 5 epochs of Adam
    c = first.summary["compare"]
    assert c["per_epoch"][0]["max_abs"] == 0 and c["first_divergent_epoch"] == 1  # same start, other epsilon
    assert set(first.weights("a")) == {"dense_0/kernel", "dense_0/bias", "dense_1/kernel", "dense_1/bias",
                                      "output/kernel", "output/bias"}
    assert first.summary["diagnosis"]["mechanism"] == "update_arithmetic"


def test_a_learning_rate_far_too_large_makes_the_standin_diverge(standin_pool):
    """float32, as the engines: SGD at 1e7 overflows at the first epoch, to NaN weights and predictions."""
    pair = make_pair(DataConfig(dataset="moons", n_samples=200),
                     parse_run({"optimizer": {"name": "sgd"}, "training": {"epochs": 2}}),
                     {"optimizer.learning_rate": 1e7})
    s = run_pair(pair, standin_pool, cache=False, checks=False).summary
    assert s["a"]["status"] == "ok" and s["b"]["status"] == "diverged" and s["b"]["diverged_epoch"] == 1
    assert s["compare"]["nonfinite_predictions"]["b"] == 40
