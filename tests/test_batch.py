"""The run cache: batches reuse runs trained before, and reuse never changes a number."""

import threading

import pytest

from core import analysis
from core.batch import RunCache, to_train
from core.config import DataConfig
from core.data import load
from core.factors import make_pair, parse_run
from core.pair import run_pair
from helpers import process_ends, same_arrays

MOONS = DataConfig(dataset="moons", n_samples=200)
A = parse_run({"training": {"epochs": 2}})


def _events(log):
    return lambda name, event: log.append((name, event["type"]))


def test_changing_only_b_trains_only_b_bitwise_as_from_scratch(standin_pool, tmp_path):
    pool = standin_pool
    cache = RunCache(tmp_path)
    run_pair(make_pair(MOONS, A, {"optimizer.epsilon": 1e-8}, True), pool, cache=cache)
    changed = make_pair(MOONS, A, {"optimizer.epsilon": 1e-6}, True)  # B starts from the cached A's init
    log = []
    reused = run_pair(changed, pool, on_event=_events(log), cache=cache)
    assert ("a", "cached") in log and ("b", "cached") not in log and ("b", "done") in log
    assert not reused.cached
    assert same_arrays(reused, run_pair(changed, pool, cache=False))


def test_identical_a_and_b_are_two_trainings_and_stay_two(pool, tmp_path):
    """Seeded with np.random.seed + tf.random.set_seed only, two fresh processes draw different weights."""
    cache = RunCache(tmp_path)
    pair = make_pair(MOONS, parse_run({"seeding": {"policy": "numpy_tf"}}, A), {})
    first = run_pair(pair, pool, cache=cache)
    assert first.summary["compare"]["first_divergent_epoch"] == 0
    again = run_pair(pair, pool, cache=RunCache(tmp_path))
    assert again.cached and same_arrays(first, again)


def test_the_analysis_reuses_the_pair_and_shares_runs_of_the_same_key(standin_pool, tmp_path):
    pool = standin_pool
    cache = RunCache(tmp_path)
    pair = make_pair(MOONS, A, {"optimizer.epsilon": 1e-8, "optimizer.learning_rate": 0.01})
    trained = run_pair(pair, pool, cache=cache, checks=False)  # the pair alone (its checks train A again)
    plan = analysis.attribution_plan(pair)
    fingerprint = load(MOONS).fingerprint()
    # With two factors, A with one of them swapped is B with the other set back: one run.
    assert to_train(plan, fingerprint, cache) == ["A+optimizer.epsilon", "B-optimizer.epsilon"]
    log = []
    outcomes = analysis.execute(pair, plan, pool, on_event=_events(log), cache=cache)
    assert {name for name, kind in log if kind == "cached"} == {
        "A", "B", "A+optimizer.learning_rate", "B-optimizer.learning_rate"}
    assert to_train(plan, fingerprint, cache) == []
    # Run it twice trains A once more: the repeat is a new run, then a cached one.
    twice = analysis.run_twice_plan(pair)
    assert to_train(twice, fingerprint, cache) == ["A again"]
    result = analysis.run_twice(analysis.execute(pair, twice, pool, cache=cache))
    assert result["bitwise_identical"]
    assert all(outcomes["B"]["weights"][k].tobytes() == v.tobytes() for k, v in trained.weights("b").items())


def test_a_stopped_batch_keeps_the_runs_that_finished(slow_standin_pool, tmp_path):
    pool = slow_standin_pool
    cache = RunCache(tmp_path)
    pair = make_pair(MOONS, A, {"training.epochs": 300})
    cancel = threading.Event()

    def on_event(name, event):
        if name == "a" and event["type"] == "done":
            cancel.set()

    stopped = run_pair(pair, pool, on_event=on_event, cancel=cancel, cache=cache)
    assert stopped.summary["a"]["status"] == "ok" and stopped.summary["b"]["status"] == "cancelled"
    assert to_train(analysis.attribution_plan(pair), load(MOONS).fingerprint(), cache) == ["B"]


def test_an_interrupted_batch_ends_its_workers_and_keeps_the_finished_runs(slow_standin_pool, tmp_path):
    pool = slow_standin_pool
    """Streamlit's Stop raises inside the progress callback: the batch must leave no worker training."""

    class Interrupted(Exception):
        pass

    pair = make_pair(MOONS, A, {"training.epochs": 300})
    cache = RunCache(tmp_path)
    pids = {}

    def on_event(name, event):
        if event["type"] == "started":
            pids[name] = event["pid"]
        if name == "A" and event["type"] == "done":
            raise Interrupted

    with pytest.raises(Interrupted):
        analysis.execute(pair, analysis.attribution_plan(pair), pool, on_event=on_event, cache=cache)
    assert process_ends(pids["B"])  # B's worker was ended, not left training
    assert to_train(analysis.attribution_plan(pair), load(MOONS).fingerprint(), cache) == ["B"]


def test_training_fresh_replaces_the_cached_runs(pool, tmp_path):
    """Seeded only with NumPy + TF, each training draws other initial weights: a fresh one replaces the entry."""
    pair = make_pair(MOONS, parse_run({"seeding": {"policy": "numpy_tf"}, "training": {"epochs": 1}}, A), {})
    first = run_pair(pair, pool, cache=RunCache(tmp_path))
    log = []
    fresh = run_pair(pair, pool, on_event=_events(log), cache=RunCache(tmp_path), reuse=False)
    assert not fresh.cached and ("a", "cached") not in log and ("b", "cached") not in log
    initial = "a/weights/dense_0/kernel"
    assert first.arrays[initial][0].tobytes() != fresh.arrays[initial][0].tobytes()
    served = run_pair(pair, pool, cache=RunCache(tmp_path))  # a new cache object: read from disk
    assert served.cached and same_arrays(served, fresh)
