"""Ray as the executor of a batch: on each node a worker pool (core.pool) in one Ray actor, each run a fresh process.

Chosen by an address, `DIVERGENCE_LAB_RAY` in the environment or `--ray ADDRESS` on the command line:
"auto" (the cluster this machine belongs to), "ray://host:10001" (a remote one), or "local" (start one on
this machine for this process). With none set, the local worker pool (core.pool) runs every batch.

A run here is what it is in the pool, to the bit, because it is the pool's run: each node's actor (NodePool)
holds that node's CPUs (and GPUs) and runs a `core.pool.WorkerPool` sized to them, so every run trains in a
fresh process that serves that run only, its variables (core.engines.worker_env) set before its framework is
imported, forked (where the node's memory allows) from a zygote that imported the framework once per node and
environment. A Ray worker process per run (the design this replaced) imports Ray and the framework again for
every run: 3.6x the pool's time for bench/sweep_speed.py's 20 runs on 2 cores, where the node pool takes ~1x.
The app's code travels with the job (`working_dir`); each node needs the packages of requirements.txt and ray.
The driver hands runs to nodes as they have room, relays A's initial weights to the runs that start from them,
and collects progress and results through the actors' calls; results go into the same run cache; failures,
Stop and timeouts come back as the pool reports them. The actors stay for the next batch and give their nodes
back after IDLE_RELEASE_S without one; a node that joins the cluster gets its actor when a batch starts. `ray`
itself is imported only where a batch runs on Ray.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from core.config import ConfigError
from core.pool import Job, Progress, WorkerPool, cancel_all, end_event, may_start
from core.pool import run_jobs as run_in_pool

RAY_ENV = "DIVERGENCE_LAB_RAY"
RAY_INSTALL = "pip install ray==2.60.0"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_EXCLUDES = [".git", "test-artifacts", "bench", "tests", "*.png"]  # what a job's working_dir leaves out
POLL_S = 0.05
IDLE_RELEASE_S = 300.0  # the node pools give their nodes back after this long without a batch
NODE_SILENT_S = 60.0  # a node pool that answers no call for this long is taken for gone


def address() -> str | None:
    """The Ray address batches run on, or None for the local pool."""
    return os.environ.get(RAY_ENV) or None


def connect(where: str):
    """The ray module, connected to `where` (once per process)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{RAY_ENV}: batches are to run on Ray at {where!r}, but ray is not installed here: "
                          f"{RAY_INSTALL}") from None
    if not ray.is_initialized():
        job = {"runtime_env": {"working_dir": str(ROOT), "excludes": SHIPPED_EXCLUDES},
               "include_dashboard": False, "log_to_driver": False}
        try:
            # address="local" starts a new instance; ray.init() without one would join a cluster already running
            # on this machine (Ray's /tmp/ray/ray_current_cluster), someone else's or another test's.
            _on_a_lasting_thread(lambda: ray.init(address=where, **job))
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{RAY_ENV}: cannot connect to Ray at {where!r} "
                              f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
        # The node pools kept are this connection's: an earlier connection's belong to another cluster, or to a
        # Ray instance that has ended.
        _release_nodes(even_in_use=True)
    return ray


def _on_a_lasting_thread(init) -> None:
    """Call `init` on a thread that lasts as long as this process. The processes a local Ray instance starts
    (raylet, object store) are killed when the *thread* that started them ends (Ray sets PR_SET_PDEATHSIG in
    them), and Streamlit runs each script run, and the first page's preparation, on a thread that ends."""
    done, failed = threading.Event(), []

    def keep():
        try:
            init()
        except BaseException as e:  # (raised again on the caller's thread)
            failed.append(e)
        done.set()
        if not failed:
            threading.Event().wait()  # until the process ends

    threading.Thread(target=keep, name="ray-init", daemon=True).start()
    done.wait()
    if failed:
        raise failed[0]


class NodePool:
    """One node's worker pool (core.pool.WorkerPool), in a Ray actor that holds the node's CPUs: the runs of any
    batch, each through `core.pool.run_jobs` on a thread of its own, their messages kept per batch until the
    driver collects them."""

    def __init__(self, slots: int):
        # Ray sets OMP_NUM_THREADS to an actor's CPUs where the node's environment has none
        # (ray._private.utils.set_omp_num_threads_if_unset); the runs see the node's own environment, as in its pool.
        if os.environ.get("OMP_NUM_THREADS") == str(slots):
            del os.environ["OMP_NUM_THREADS"]
        self.pool = WorkerPool(max_workers=slots)
        self.lock = threading.Lock()
        self.outbox: dict[str, list] = {}  # batch -> [(key, event)], oldest first
        self.running: dict[tuple[str, str], threading.Event] = {}  # (batch, key) -> that run's Stop
        self.started = 0  # runs handed to this node, all batches

    def slots(self) -> int:
        return self.pool.capacity

    def warm(self) -> int:
        """The slots, once the warm workers have imported their framework (for benchmarks: the pool's wait_warm)."""
        self.pool.wait_warm()
        return self.pool.capacity

    def runs_started(self) -> int:
        """The runs handed to this node (for tests: how the driver spread a batch)."""
        return self.started

    def start(self, batch: str, job: Job, initial: dict, timeout_s: float) -> None:
        stop = threading.Event()
        with self.lock:
            self.running[(batch, job.key)] = stop
            self.started += 1
        threading.Thread(target=self._run, args=(batch, job, initial, timeout_s, stop), daemon=True).start()

    def _post(self, batch: str, key: str, event: dict) -> None:
        with self.lock:
            if (batch, key) in self.running:  # nothing more from a run the driver stopped
                self.outbox.setdefault(batch, []).append((key, event))

    def _run(self, batch: str, job: Job, initial: dict, timeout_s: float, stop: threading.Event) -> None:
        def progress(key: str, event: dict) -> None:
            if event["type"] in ("started", "epoch"):  # its end comes as the outcome
                self._post(batch, key, event)

        outcome = run_in_pool(self.pool, [job], progress, stop, timeout_s, initial, on_init=lambda key, weights:
                              self._post(batch, key, {"type": "init", "weights": weights}))[job.key]
        self._post(batch, job.key, {"type": "outcome", "outcome": outcome})
        with self.lock:
            self.running.pop((batch, job.key), None)

    def collect(self, batch: str) -> list:
        with self.lock:
            return self.outbox.pop(batch, [])

    def stop(self, batch: str, key: str) -> None:
        """End a run (its worker is killed) and drop what it left uncollected."""
        with self.lock:
            stop = self.running.pop((batch, key), None)
            left = [m for m in self.outbox.pop(batch, []) if m[0] != key]
            if left:
                self.outbox[batch] = left
        if stop is not None:
            stop.set()


_pools: dict = {}  # node id -> (NodePool actor, slots): this connection's node pools, kept between batches
_joining: dict = {}  # node id -> (its NodePool actor, that actor's slots() call): pools not yet up
_nodes_lock = threading.Lock()
_starting = threading.Lock()
_batches_running = 0
_release_timer: threading.Timer | None = None


def node_pools(ray) -> list[tuple]:
    """(actor, slots) for every node of the cluster that has CPUs, kept until IDLE_RELEASE_S pass without a batch
    (a Ray actor ends once no handle to it is left). The first batch after connecting starts them and waits for
    them; a node that joins the cluster later gets its pool when the next batch starts, and serves from the
    first batch after its pool is up (no batch waits for it)."""
    global _pools
    with _starting:  # one set of node pools, however many sessions start a batch at once
        with _nodes_lock:
            pools = dict(_pools)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for node in ray.nodes():
            cpus = int(node["Resources"].get("CPU", 0))
            if node["Alive"] and cpus and node["NodeID"] not in pools and node["NodeID"] not in _joining:
                actor = ray.remote(NodePool).options(
                    num_cpus=cpus, num_gpus=node["Resources"].get("GPU", 0), max_concurrency=64,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(cpus)
                _joining[node["NodeID"]] = (actor, actor.slots.remote())
        refs = [ref for _, ref in _joining.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0 if pools else NODE_SILENT_S) if refs else ([], [])
        for node_id, (actor, ref) in list(_joining.items()):
            if ref in ready and _joining.pop(node_id, None):  # (unless _release_nodes forgot it meanwhile)
                try:
                    pools[node_id] = (actor, ray.get(ref))
                except Exception:  # its actor ended before it was up (its node left): tried again if it is back
                    pass
        if not pools:
            raise ConfigError(f"{RAY_ENV}: no node of the Ray cluster had its CPUs free for a worker pool within "
                              f"{NODE_SILENT_S:.0f} s")
        with _nodes_lock:
            _pools = pools
        return list(pools.values())


def prepare(where: str | None = None) -> None:
    """Start the node pools ahead of the first batch, as the app starts its local pool before the first Run;
    unused, they give their nodes back after IDLE_RELEASE_S."""
    _hold_nodes(connect(where or address() or "local"))
    _let_go_of_nodes()


def _hold_nodes(ray) -> list[tuple]:
    global _batches_running
    with _nodes_lock:
        _batches_running += 1
        if _release_timer is not None:
            _release_timer.cancel()
    try:
        return node_pools(ray)
    except BaseException:
        _let_go_of_nodes()
        raise


def _let_go_of_nodes() -> None:
    global _batches_running, _release_timer
    with _nodes_lock:
        _batches_running -= 1
        if not _batches_running:
            _release_timer = threading.Timer(IDLE_RELEASE_S, _release_nodes)
            _release_timer.daemon = True
            _release_timer.start()


def _release_nodes(even_in_use: bool = False) -> None:
    """Forget the node pools (the actors end with their last handle; a batch under way keeps its own), so that
    the next batch starts new ones: after IDLE_RELEASE_S without a batch, or at once when one of them is gone."""
    global _pools
    with _nodes_lock:
        if even_in_use or not _batches_running:
            _pools = {}
            _joining.clear()


def _collect(ray, actors: list, batch: str) -> list[list | str]:
    """Each node's new messages for `batch`, or why there are none: its actor is gone or silent."""
    refs = [actor.collect.remote(batch) for actor in actors]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=NODE_SILENT_S)
    answers = []
    for ref in refs:
        if ref not in ready:
            answers.append(f"the Ray node's worker pool stopped answering for {NODE_SILENT_S:.0f} s")
            continue
        try:
            answers.append(ray.get(ref))
        except Exception as e:  # the actor died (its node, its process) or Ray failed the call
            answers.append(f"the Ray node's worker pool ended: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return answers


def run_jobs(jobs: list[Job], on_event: Progress | None = None, cancel: threading.Event | None = None,
             timeout_s: float = 900, initial: dict[str, dict] | None = None, on_result: Progress | None = None,
             where: str | None = None) -> dict[str, dict]:
    """core.pool.run_jobs on Ray: key -> the run's result message or an error message; never raises for a run."""
    if not jobs:  # (every run of the batch came from the cache)
        return {}
    ray = connect(where or address() or "local")
    on_event = on_event or (lambda key, event: None)
    cancel = cancel or threading.Event()
    initial = dict(initial or {})
    nodes = _hold_nodes(ray)
    batch = uuid.uuid4().hex  # the node pools serve every batch of this process at once
    load = [0] * len(nodes)
    gone: dict[int, str] = {}  # node -> why its pool is gone
    pending = list(jobs)
    active: dict[str, tuple[int, Job, float]] = {}  # key -> (node, job, submitted)
    results: dict[str, dict] = {}

    def finish(key: str, outcome: dict, notify: bool = True) -> None:
        node, job, submitted = active.pop(key)
        load[node] -= 1
        if outcome["type"] == "result":
            outcome["timings"]["total_s"] = time.time() - submitted
        else:  # (a run that ended by itself has nothing left to stop)
            nodes[node][0].stop.remote(batch, key)
        results[key] = outcome
        if on_result is not None and outcome["type"] == "result":
            on_result(key, outcome)
        if notify:
            on_event(key, end_event(outcome))

    try:
        while pending or active:
            if cancel.is_set():
                cancel_all(active, pending, finish, results)
                break
            for job in list(pending):
                # one that starts from another's initial weights is sent with them
                if not may_start(job, pending, initial, active, results) or job.init_from not in (None, *initial):
                    continue
                if len(gone) == len(nodes):  # no node pool left for this batch
                    pending.remove(job)
                    results[job.key] = {"type": "error", "message": next(iter(gone.values()))}
                    continue
                node = min((n for n in range(len(nodes)) if n not in gone), key=lambda n: load[n] / nodes[n][1])
                if load[node] >= nodes[node][1]:
                    break
                pending.remove(job)
                given = {job.init_from: initial[job.init_from]} if job.init_from else {}
                nodes[node][0].start.remote(batch, job, given, timeout_s)
                active[job.key] = (node, job, time.time())
                load[node] += 1
            busy = sorted({node for node, _, _ in active.values()})
            for node, messages in zip(busy, _collect(ray, [nodes[n][0] for n in busy], batch)):
                if isinstance(messages, str):
                    gone[node] = messages  # its runs fail; the rest of the batch goes to the other nodes
                    _release_nodes(even_in_use=True)
                    for key in [k for k, (n, _, _) in active.items() if n == node]:
                        finish(key, {"type": "error", "message": messages})
                    continue
                for key, event in messages:
                    if key not in active:
                        continue
                    if event["type"] == "init":
                        initial[key] = event["weights"]
                    elif event["type"] == "outcome":
                        finish(key, event["outcome"])
                    else:
                        on_event(key, event)
            cancel.wait(POLL_S)
    finally:  # the caller was interrupted (e.g. Streamlit's Stop): end every run, report nothing
        for key in list(active):
            finish(key, {"type": "error", "message": "interrupted"}, notify=False)
        _let_go_of_nodes()
    return results
