"""A Ray cluster that grows while the app uses it: a node that joins gets its worker pool at the next batch's start
and serves the batches after that. A cluster of two Ray nodes on this machine, started in the test."""

import time

import pytest

from core import ray_executor
from core.batch import RunCache, run_batch
from core.config import DataConfig
from core.data import load
from core.factors import make_pair, parse_run
from core.pair import pair_plan


@pytest.fixture
def one_node_cluster(monkeypatch):
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    monkeypatch.setenv(ray_executor.RAY_ENV, cluster.address)
    ray = ray_executor.connect(cluster.address)
    yield cluster, ray
    ray_executor._release_nodes(even_in_use=True)  # (this cluster's node pools)
    ray.shutdown()
    cluster.shutdown()


def test_a_node_that_joins_the_cluster_gets_a_pool_and_serves_the_next_batches(one_node_cluster, tmp_path):
    cluster, ray = one_node_cluster
    first = ray_executor.node_pools(ray)
    assert [slots for _, slots in first] == [1]
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    deadline = time.monotonic() + 60
    pools = ray_executor.node_pools(ray)  # starts the new node's pool; a batch starting now does not wait for it
    while len(pools) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        pools = ray_executor.node_pools(ray)
    assert pools[0] == first[0] and [slots for _, slots in pools] == [1, 1]
    # two runs at once, one slot on each node: the batch needs the new node to run them side by side
    moons = DataConfig(dataset="moons", n_samples=200)
    pair = make_pair(moons, parse_run({"training": {"epochs": 1}}), {"optimizer.epsilon": 1e-3}, False)
    results = run_batch(pair_plan(pair, "A", "B"), load(moons), cache=RunCache(tmp_path))
    assert all(r["type"] == "result" for r in results.values()), results
    assert ray.get([actor.runs_started.remote() for actor, _ in pools]) == [1, 1]
