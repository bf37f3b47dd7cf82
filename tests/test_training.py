"""Real training in real worker processes (tiny epochs; tests/test_plain_scripts.py compares each engine with a
plain script); the pool's own behaviour (kills, timeouts, cancel, threads, warm workers) with framework-free
workers (standin_worker.py)."""

import os
import signal
import threading
import time

import numpy as np

from core.config import DataConfig
from core.factors import make_pair, parse_run
from core.batch import RunCache
from core.pair import run_pair
from core.pool import WorkerPool
from core.presets import preset
from helpers import FreshPython, process_ends, same_arrays, user_env

MOONS = DataConfig(dataset="moons", n_samples=200)


def _run(pool, pair, **kw):
    kw.setdefault("cache", False)
    kw.setdefault("checks", False)  # training itself; the diagnosis's runs are tested in test_mechanisms
    result = run_pair(pair, pool, **kw)
    return result


def test_run_it_twice_is_bitwise_identical(pool):
    r = _run(pool, preset("run-it-twice").pair(epochs=3))
    c = r.summary["compare"]
    assert r.complete and c["weights_bitwise_equal"] and c["predictions_bitwise_equal"]
    assert c["first_divergent_epoch"] is None and c["prediction_max_abs_delta"] == 0.0
    assert len(r.summary["a"]["history"]) == 3 and r.weights("a")["dense_0/kernel"].shape == (4, 64, 64)


PLAIN_NUMPY_TF_SEED = """
    import sys
    import numpy as np
    import tensorflow as tf
    import keras

    np.random.seed(0)
    tf.random.set_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    np.savez(sys.argv[1], *model.get_weights())
"""


def test_numpy_tf_seeding_reports_what_plain_keras_does(pool, tmp_path):
    plains = [FreshPython(PLAIN_NUMPY_TF_SEED, str(tmp_path / f"w{i}.npz"), env=user_env(TF_CPP_MIN_LOG_LEVEL="2"))
              for i in (1, 2)]
    r = _run(pool, preset("tf-seed-not-enough").pair(epochs=1))
    app_initial_equal = r.summary["compare"]["first_divergent_epoch"] != 0
    for plain in plains:
        plain.output()
    with np.load(tmp_path / "w1.npz") as w1, np.load(tmp_path / "w2.npz") as w2:
        plain_initial_equal = all(w1[k].tobytes() == w2[k].tobytes() for k in w1.files)
    assert app_initial_equal == plain_initial_equal
    assert not plain_initial_equal  # the DESIGN's fact on Keras 3.15: these seeds do not fix the weights


def test_keras_and_tensorflow_engines_agree_when_every_factor_is_aligned(pool):
    r = _run(pool, preset("fit-vs-raw-loop").pair(epochs=5))
    last = r.summary["compare"]["per_epoch"][-1]
    assert r.summary["b"]["effective"]["optimizer_class"] == "tf.raw_ops kernels"
    assert last["epoch"] == 5 and 0 < last["max_abs"] < 1e-5


def test_a_run_that_goes_nan_ends_as_diverged(pool):
    pair = make_pair(DataConfig(dataset="diabetes"),
                     parse_run({"training": {"epochs": 4}, "optimizer": {"learning_rate": 1e6}}),
                     {"optimizer.learning_rate": 1e-3})
    r = _run(pool, pair)
    a = r.summary["a"]
    n = a["diverged_epoch"]
    assert a["status"] == "diverged" and 1 <= n <= 4 and len(a["history"]) == n  # training stopped there
    assert not np.isfinite(a["history"][-1]["loss"])
    assert a["message"] == f"diverged at epoch {n}: the loss became non-finite"
    assert r.summary["b"]["status"] == "ok" and len(r.summary["b"]["history"]) == 4
    c = r.summary["compare"]
    assert r.complete and c["nonfinite_predictions"] == {"a": r.summary["data"]["n_test"], "b": 0}
    assert c["compared_samples"] == 0 and c["prediction_max_abs_delta"] is None  # NaN is no prediction to compare


def test_a_killed_worker_gives_an_error_and_the_next_run_works(slow_standin_pool):
    pool = slow_standin_pool
    # A is killed mid-way; B is short, so that the pair does not wait out a long B.
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 300}}), {"training.epochs": 3})

    def kill_a(key, event):
        if key == "a" and event["type"] == "started":
            kill_a.pid = event["pid"]
        if key == "a" and event["type"] == "epoch" and event["epoch"] == 2:
            os.kill(kill_a.pid, signal.SIGKILL)

    r = _run(pool, pair, on_event=kill_a)
    assert r.summary["a"]["status"] == "error"
    assert r.summary["a"]["message"] == "the worker process was killed by SIGKILL"
    assert not r.complete and r.summary["compare"] is None
    again = _run(pool, make_pair(MOONS, parse_run({"training": {"epochs": 2}}), {}))
    assert again.complete and again.summary["compare"]["weights_bitwise_equal"]


def test_a_hanging_run_times_out_and_cancel_stops_a_pair(slow_standin_pool):
    pool = slow_standin_pool
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 300}}), {})
    r = _run(pool, pair, timeout_s=0.5)
    assert r.summary["a"]["status"] == "error" and r.summary["a"]["message"].startswith("timed out after")
    cancel = threading.Event()
    r = _run(pool, pair, cancel=cancel, on_event=lambda key, event: event["type"] == "epoch" and cancel.set())
    assert {r.summary[m]["status"] for m in "ab"} == {"cancelled"}


def test_two_pairs_from_two_threads_match_each_alone(standin_pool):
    pool = standin_pool
    pairs = [make_pair(MOONS, parse_run({"training": {"epochs": 3}}), {"optimizer.epsilon": 1e-8}, True),
             make_pair(MOONS, parse_run({"training": {"epochs": 3}}), {"engine.name": "tensorflow"}, True)]
    alone = [_run(pool, p) for p in pairs]
    together = [None, None]

    def go(i):
        together[i] = _run(pool, pairs[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, t in zip(alone, together):
        assert t.complete and same_arrays(a, t)


def test_the_same_pair_twice_comes_from_the_cache_bitwise(standin_pool, tmp_path):
    pool = standin_pool
    cache = RunCache(tmp_path / "c")
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}}), {"optimizer.learning_rate": 0.01})
    first = _run(pool, pair, cache=cache)
    second = _run(pool, pair, cache=cache)
    from_disk = _run(pool, pair, cache=RunCache(tmp_path / "c"))
    assert not first.cached and second.cached and from_disk.cached
    assert same_arrays(first, second) and same_arrays(first, from_disk)
    assert from_disk.summary == first.summary


def test_keras_normalization_and_tf_keras_engine_run(pool):
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}, "preprocess": {"scaler": "keras_normalization"}}),
                     {"engine.name": "tf_keras"})
    r = _run(pool, pair)
    assert r.complete, r.summary["a"].get("message")
    assert r.summary["b"]["versions"]["keras_module"] == "tf_keras"
    assert r.summary["b"]["effective"]["env"]["TF_USE_LEGACY_KERAS"] == "1"
    assert r.summary["a"]["versions"]["keras_module"] == "keras"


def test_a_one_worker_pool_runs_the_pair_one_after_the_other_with_the_same_result(standin_workers, standin_pool):
    """Community Cloud's smallest container has room for one worker: B then waits for A's slot."""
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}}), {"optimizer.epsilon": 1e-8}, True)
    small = WorkerPool(max_workers=1, warm=1)
    try:
        alone = _run(small, pair)
    finally:
        small.shutdown()
    assert small.capacity == 1 and alone.complete
    assert same_arrays(alone, _run(standin_pool, pair))
    assert alone.summary["compare"]["per_epoch"][0]["max_abs"] == 0.0  # B started from A's initial weights


def test_b_starts_while_a_builds_and_ends_when_a_fails_before_its_initial_weights(standin_workers):
    """B, starting from A's initial weights, gets its worker as soon as A runs (it builds its own
    model meanwhile); when A dies before its weights exist, B gets an error naming A and its worker ends."""
    from core.data import load
    from core.pool import Job, run_jobs

    pair = make_pair(MOONS, parse_run({"training": {"epochs": 1}}), {"optimizer.epsilon": 1e-8}, True)
    fresh = WorkerPool(max_workers=2, warm=0)
    pids = {}

    def hold_a_until_b_starts(key, event):
        if event["type"] == "started":
            pids[key] = event["pid"]
            os.kill(pids["a"], signal.SIGSTOP if key == "a" else signal.SIGCONT)

    try:
        jobs = [Job("a", pair.a, load(MOONS)), Job("b", pair.b, load(MOONS), init_from="a")]
        done = run_jobs(fresh, jobs, hold_a_until_b_starts, timeout_s=120)
        assert [done[k]["type"] for k in "ab"] == ["result", "result"]
        a_init, b_init = ({name: w[0] for name, w in done[k]["weights"].items()} for k in "ab")
        assert a_init.keys() == b_init.keys() and all(a_init[n].tobytes() == b_init[n].tobytes() for n in a_init)
        pids.clear()
        broken = run_jobs(fresh, [Job("a", pair.a, None), Job("b", pair.b, load(MOONS), init_from="a")],
                          lambda key, event: event["type"] == "started" and pids.setdefault(key, event["pid"]))
    finally:
        fresh.shutdown()
    assert broken["a"]["type"] == "error" and "AttributeError" in broken["a"]["message"]
    assert broken["b"] == {"type": "error", "message": "not run: a failed before its initial weights"}
    assert fresh.busy == set() and process_ends(pids["b"])


def test_the_pool_warms_the_used_environments_only_after_the_last_run(standin_workers):
    """A replacement importing TensorFlow would take CPU from the run still training."""
    from core.engines import worker_env

    pair = make_pair(MOONS, parse_run({"training": {"epochs": 1}}), {"engine.name": "tf_keras"})
    fresh = WorkerPool(max_workers=2, warm=2)
    idle_when_done = []
    try:
        r = _run(fresh, pair, on_event=lambda m, e: e["type"] == "done" and idle_when_done.append(len(fresh.idle)))
        assert r.complete
        assert idle_when_done == [0, 2]  # nothing warmed while the other model trained
        assert {w.env for w in fresh.idle} == {worker_env(pair.a), worker_env(pair.b)}
    finally:
        fresh.shutdown()


def test_the_app_s_pool_warms_fresh_workers_only_after_its_delay(standin_workers):
    """The app's pool lets the browser draw the result before new workers import their framework."""
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 1}}), {"optimizer.epsilon": 1e-8})
    delayed = WorkerPool(max_workers=2, warm=2, refill_delay_s=0.5)
    try:
        assert _run(delayed, pair).complete
        assert delayed.live() == 0 and delayed.refill_pending
        assert _run(delayed, pair).complete  # a Run within the delay starts workers of its own
        ended = time.monotonic()
        assert delayed.live() == 0 and delayed.refill_pending
        delayed.wait_warm()
        assert time.monotonic() - ended >= 0.45, "the refill waits for the delay after the latest run"
        assert len(delayed.idle) == 2 and all(w.ready_at for w in delayed.idle)
    finally:
        delayed.shutdown()


def test_worker_count_is_bounded_by_the_memory_limit(monkeypatch):
    from core import machine, pool

    monkeypatch.setattr(machine, "memory_limit_mb", lambda: 690)
    assert pool.default_max_workers() == 1
    monkeypatch.setattr(machine, "memory_limit_mb", lambda: 2700)
    assert pool.default_max_workers() == min(6, max(2, os.cpu_count()))
    monkeypatch.undo()
    assert 100 < machine.memory_limit_mb() < 1e8  # the real reading: cgroup limit or physical memory


def test_the_memory_limit_is_read_from_this_process_s_own_cgroup_and_those_above_it():
    from core.machine import CGROUP_ROOT, _cgroup_limit_files

    v2 = _cgroup_limit_files("0::/user.slice/app.scope\n")
    assert v2 == [CGROUP_ROOT / "user.slice/app.scope/memory.max", CGROUP_ROOT / "user.slice/memory.max",
                  CGROUP_ROOT / "memory.max"]
    v1 = _cgroup_limit_files("5:cpu,cpuacct:/x\n4:memory:/docker/abc\n")
    assert v1 == [CGROUP_ROOT / "memory/docker/abc/memory.limit_in_bytes",
                  CGROUP_ROOT / "memory/docker/memory.limit_in_bytes", CGROUP_ROOT / "memory/memory.limit_in_bytes"]
