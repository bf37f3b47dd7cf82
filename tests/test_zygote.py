"""Workers forked from a zygote (core.pool.Zygote): one process per environment imports the framework,
every run's worker is forked from it. Runs on real frameworks in forked workers are checked bit for bit
against plain scripts in test_training, test_mechanisms and test_export (the session's pool forks)."""

import sys

import numpy as np
import psutil
import pytest

from core import machine
from core.config import DataConfig
from core.data import load
from core.engines import worker_env
from core.factors import make_pair, parse_run
from core.pair import run_pair
from core.pool import Job, WorkerPool, run_jobs
from helpers import same_arrays

MOONS = DataConfig(dataset="moons", n_samples=200)


def _parents(pool: WorkerPool, pair) -> tuple:
    """The pair's result, and the parent pid of each run's worker as it started."""
    parents = {}

    def on_event(key, event):
        if event["type"] == "started":
            parents[key] = psutil.Process(event["pid"]).ppid()

    return run_pair(pair, pool, cache=False, checks=False, on_event=on_event), parents


def test_a_pool_forks_each_environment_s_workers_from_its_own_zygote_with_the_same_results(standin_workers):
    import core.pool

    slow = core.pool.WORKER_COMMAND + ("0.2",)  # stand-ins whose epochs take 0.2 s: alive when their start is told
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}}), {"engine.name": "keras_jax"})
    forking = WorkerPool(max_workers=2, warm=0, command=slow)
    starting = WorkerPool(max_workers=2, warm=0, command=slow, use_zygotes=False)
    try:
        forked, parents = _parents(forking, pair)
        again, parents_again = _parents(forking, pair)
        fresh, fresh_parents = _parents(starting, pair)
        zygotes = {env: z.proc.pid for env, z in forking.zygotes.items()}
    finally:
        forking.shutdown()
        starting.shutdown()
    assert forked.complete and same_arrays(forked, fresh) and same_arrays(forked, again)
    assert zygotes.keys() == {worker_env(pair.a), worker_env(pair.b)}
    assert parents == parents_again == {"a": zygotes[worker_env(pair.a)], "b": zygotes[worker_env(pair.b)]}
    assert fresh_parents == {"a": psutil.Process().pid, "b": psutil.Process().pid} and not starting.zygotes


@pytest.mark.parametrize("use_zygotes", [True, False])
def test_a_worker_whose_framework_cannot_be_imported_gives_the_run_its_reason(use_zygotes):
    failing = (sys.executable, "-c", "import sys; sys.exit('no framework in this environment')")
    pool = WorkerPool(max_workers=2, warm=0, command=failing, use_zygotes=use_zygotes)
    try:
        run = parse_run({"training": {"epochs": 1}})
        done = run_jobs(pool, [Job("a", run, load(MOONS)), Job("b", run, load(MOONS))], timeout_s=60)
        assert pool.forks == use_zygotes
    finally:
        pool.shutdown()
    assert done["a"] == done["b"] == {
        "type": "error", "message": "the worker process exited with code 1: no framework in this environment"}


def test_a_pool_keeps_zygotes_for_the_latest_environments_and_none_where_memory_is_short(standin_workers,
                                                                                        monkeypatch):
    import core.pool

    pool = WorkerPool(max_workers=2, warm=0)
    try:
        for epsilon in (1e-3, 1e-4, 1e-5, 1e-6):  # A with oneDNN on, B with it off: two environments
            pair = make_pair(MOONS, parse_run({"training": {"epochs": 1}, "numerics": {"onednn": "on"}}),
                             {"optimizer.epsilon": epsilon, "numerics.onednn": "off"})
            assert run_pair(pair, pool, cache=False, checks=False).complete
        envs = list(pool.zygotes)
        assert len(envs) == 2 and all(z.alive() for z in pool.zygotes.values())
        for engine in ("keras_jax", "keras_torch", "tf_keras"):  # three more: the least recently used go
            run = parse_run({"training": {"epochs": 1}, "engine": {"name": engine}})
            assert run_jobs(pool, [Job("a", run, load(MOONS))])["a"]["type"] == "result"
        assert len(pool.zygotes) == core.pool.MAX_ZYGOTES and not set(envs) & set(pool.zygotes)
    finally:
        pool.shutdown()
    monkeypatch.setattr(machine, "memory_limit_mb", lambda: 690)  # Community Cloud's smallest tier
    assert not WorkerPool(max_workers=1, warm=0).forks


def test_a_run_forked_from_a_zygote_is_a_fresh_process_s_run(pool):
    """Real frameworks: the same seeded run bitwise as in a worker started for it; what fresh processes draw
    unseeded differs between forked workers too: Keras 3's unseeded initial weights (from Python's `random`,
    which reseeds itself at fork) and, on JAX, fit's own shuffle (NumPy's global generator, reseeded by the
    forked worker)."""
    fresh = WorkerPool(max_workers=2, warm=0, use_zygotes=False)
    try:
        seeded = make_pair(MOONS, parse_run({"training": {"epochs": 1}, "model": {"dropout": 0.2}}), {})
        unseeded = make_pair(MOONS, parse_run({"training": {"epochs": 1}, "seeding": {"policy": "none"}}), {})
        shuffled = make_pair(MOONS, parse_run({"training": {"epochs": 1, "batch_order": "framework"},
                                               "engine": {"name": "keras_jax"}, "seeding": {"policy": "explicit"}}), {})
        forked, started = (run_pair(seeded, p, cache=False, checks=False) for p in (pool, fresh))
        initialised, ordered = (run_pair(p, pool, cache=False, checks=False) for p in (unseeded, shuffled))
    finally:
        fresh.shutdown()
    assert pool.forks and forked.complete and same_arrays(forked, started)
    kernels = initialised.weights("a")["dense_0/kernel"][0], initialised.weights("b")["dense_0/kernel"][0]
    assert not np.array_equal(*kernels)
    initial, final = ([ordered.weights(k)["dense_0/kernel"][epoch] for k in "ab"] for epoch in (0, -1))
    assert np.array_equal(*initial) and not np.array_equal(*final)
