"""Batches on Ray: a local Ray cluster started here, its node's worker pool in a Ray actor, each run a fresh process,
bitwise the pool's."""

import threading
import time

import numpy as np
import pytest

from core import ray_executor
from core.batch import RunCache, run_batch
from core.config import DataConfig
from core.data import load
from core.factors import make_pair, parse_run
from core.pair import pair_plan

MOONS = DataConfig(dataset="moons", n_samples=200)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ray_executor.RAY_ENV, "local")
        # Every task's process inherits it, as from a node's environment; a run with oneDNN at TensorFlow's
        # default must not see it (the pool's workers never do).
        patch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
        # Started as the app starts it: from a thread that then ends (a Streamlit script run, the first page's
        # preparation), and a batch after it has ended.
        starting = threading.Thread(target=ray_executor.connect, args=("local",))
        starting.start()
        starting.join()
        yield ray
        ray.shutdown()


def _cpus(ray) -> float:
    return ray.cluster_resources()["CPU"]


def _same(x: dict, y: dict) -> bool:
    return x["weights"].keys() == y["weights"].keys() and all(
        np.array_equal(x["weights"][k], y["weights"][k]) for k in x["weights"]) and \
        np.array_equal(x["predictions"], y["predictions"])


def test_a_batch_on_ray_is_bitwise_the_batch_in_the_pool(local_ray, pool, tmp_path, monkeypatch):
    # Keras 3 on TensorFlow against Keras 3 on JAX from A's initial weights: the initial weights travel
    # from A's task to B's through the driver, and each task's framework is the one its variables name.
    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}, "model": {"dropout": 0.1}}),
                     {"engine.name": "keras_jax"}, True)
    plan, ds = pair_plan(pair, "A", "B"), load(pair.data)
    events = []
    on_ray = run_batch(plan, ds, cache=RunCache(tmp_path / "ray"), on_event=lambda n, e: events.append((n, e)))
    monkeypatch.delenv(ray_executor.RAY_ENV)
    in_pool = run_batch(plan, ds, pool, cache=RunCache(tmp_path / "pool"))
    for name in plan:
        assert on_ray[name]["type"] == "result" and _same(on_ray[name], in_pool[name]), name
    assert on_ray["A"]["effective"]["frameworks imported"] == ["tensorflow"]
    assert on_ray["A"]["effective"]["onednn"] == in_pool["A"]["effective"]["onednn"] == \
        "TensorFlow default (on for x86 Linux builds)"
    assert on_ray["B"]["effective"]["frameworks imported"] == ["jax"]
    assert [e["epoch"] for n, e in events if n == "B" and e["type"] == "epoch"] == [1, 2]
    assert {n for n, e in events if e["type"] == "done"} == {"A", "B"}


def test_a_failed_run_a_dead_node_pool_and_stop_come_back_from_ray_as_from_the_pool(local_ray, tmp_path):
    ds = load(MOONS)
    gpu = make_pair(MOONS, parse_run({"training": {"epochs": 1}, "engine": {"name": "keras_jax"},
                                      "numerics": {"device": "gpu"}}), {"numerics.device": "cpu"}, True)
    failed = run_batch(pair_plan(gpu, "A", "B"), ds, cache=RunCache(tmp_path))
    assert "numerics.device: 'gpu' was asked for, but jax sees no GPU" in failed["A"]["message"]
    assert failed["B"]["message"] == "not run: A failed before its initial weights"
    long = make_pair(MOONS, parse_run({"training": {"epochs": 400, "batch_size": 4}}), {}, False)
    (node_pool, slots), = ray_executor.node_pools(local_ray)
    assert slots == _cpus(local_ray)  # the cluster's one node, all its CPUs

    def kill_the_node_pool_at_first_epoch(name, event):
        if event["type"] == "epoch":
            local_ray.kill(node_pool)

    # more runs than slots: those running die with it, the others were still waiting for a slot
    more = {}
    for seed in range(1, int(slots) // 2 + 2):
        more.update(pair_plan(make_pair(MOONS, parse_run({"training": {"epochs": 400, "batch_size": 4},
                                                          "seeding": {"seed": seed}}), {}, False), f"A{seed}", f"B{seed}"))
    lost = run_batch(more, ds, cache=RunCache(tmp_path), on_event=kill_the_node_pool_at_first_epoch)
    assert lost.keys() == more.keys() and len(more) > slots
    assert all(o["message"].startswith("the Ray node's worker pool ended: ActorDiedError") for o in lost.values()), lost
    # the next batch runs on a new node pool
    cancel = threading.Event()

    def stop_at_first_epoch(name, event):
        if event["type"] == "epoch":
            cancel.set()

    stopped = run_batch(pair_plan(long, "A", "B"), ds, cancel=cancel, cache=RunCache(tmp_path),
                        on_event=stop_at_first_epoch)
    assert all(o.get("cancelled") for o in stopped.values()), stopped
    assert ray_executor.node_pools(local_ray)[0][0] != node_pool


def test_a_sweep_runs_on_ray_from_the_command_line_and_then_gives_the_node_back(local_ray, tmp_path, capsys,
                                                                                monkeypatch):
    from core.__main__ import main

    assert local_ray.available_resources().get("CPU", 0) == 0  # the node pool of the tests before holds them all
    monkeypatch.setattr(ray_executor, "IDLE_RELEASE_S", 0.1)
    monkeypatch.setenv(ray_executor.RAY_ENV, "local")  # (--ray sets it for the process; this test's ends with it)
    out = tmp_path / "sweep"
    code = main(["sweep", "--preset", "adam-epsilon", "--epochs", "1", "--factor", "optimizer.epsilon",
                 "--values", "1e-3", "--seeds", "2", "--ray", "local", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    assert "4 runs: 2 seeds x (1 value + A)" in capsys.readouterr().out
    assert (out / "sweep.csv").read_text().count("\n") == 1 + 2 + 1  # header, 2 values x seeds, 1 pair of seeds
    # IDLE_RELEASE_S after the batch the node pool ends, and the node's CPUs are the cluster's again
    deadline = time.monotonic() + 30
    while local_ray.available_resources().get("CPU", 0) < _cpus(local_ray) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert local_ray.available_resources().get("CPU", 0) == _cpus(local_ray)


def test_the_apps_first_page_starts_the_node_pools_that_then_serve_two_sessions_at_once(local_ray, monkeypatch,
                                                                                        tmp_path):
    import core.pool
    from ui import run

    monkeypatch.setattr(core.pool, "_default_pool", None)
    assert local_ray.available_resources().get("CPU", 0) == _cpus(local_ray)  # the test before gave the node back
    run._prepare()  # what the first page starts PREPARE_DELAY_S after it is drawn
    assert core.pool._default_pool is None
    assert local_ray.available_resources().get("CPU", 0) == 0
    assert ray_executor.node_pools(local_ray)[0][1] == _cpus(local_ray)
    # two sessions' batches at once on that node pool, each A the other's B: every run comes back to its batch
    ds, results = load(MOONS), {}

    def batch(a_seed: int, b_seed: int) -> None:
        pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}, "seeding": {"seed": a_seed}}),
                         {"seeding.seed": b_seed}, False)
        results[a_seed] = run_batch(pair_plan(pair, "A", "B"), ds, cache=RunCache(tmp_path / str(a_seed)))

    pair = make_pair(MOONS, parse_run({"training": {"epochs": 2}, "seeding": {"seed": 1}}), {"seeding.seed": 2}, False)
    says, epochs = run.batch_cost(pair_plan(pair, "A", "B"), ds.fingerprint())  # what the pages say before a batch
    assert says == "**2 runs** to train (4 epochs in all, on the Ray cluster at `local`, as many at once as its " \
        "nodes' CPUs allow)" and epochs == 4
    sessions = [threading.Thread(target=batch, args=seeds) for seeds in ((1, 2), (2, 1))]
    for session in sessions:
        session.start()
    for session in sessions:
        session.join(timeout=120)
    assert _same(results[1]["A"], results[2]["B"]) and _same(results[1]["B"], results[2]["A"])
    assert not _same(results[1]["A"], results[1]["B"])
