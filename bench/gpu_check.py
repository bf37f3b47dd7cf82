"""What a GPU does to a pair, measured on this machine's GPU by the app's own runs (worker pool, engines,
diagnosis); for a machine with an NVIDIA GPU. It imports no TensorFlow and trains none: the GPU
machines this was written for have JAX and PyTorch but no TensorFlow.

Pairs (digits MLP 64-32-10, Adam, batch 32, --epochs epochs; Keras 3 on JAX, then on PyTorch where
torch is installed):
  repeat          the same GPU run twice, each in a fresh process: is a GPU run reproducible?
  auto-is-gpu     device auto (A) against device gpu (B): does auto land on the GPU?
  tf32-vs-float32 TF32 matmuls against full float32 on the GPU
  det-ops         deterministic GPU ops (JAX: --xla_gpu_deterministic_ops; PyTorch:
                  use_deterministic_algorithms) against the default
  gpu-vs-cpu      the GPU (A) against the CPU (B), full float32 on both
The numeric pairs start B from A's initial weights, as the app's GPU scenarios do.

For each pair: the app's verdict (mechanism and sentence), whether the final weights are bitwise equal,
max |dw|, max |dp|, test samples that change class, what each run had in effect (device, matmul
precision, determinism) and its seconds of training. One JSON object per pair goes to --out as it
finishes, so a run cut short keeps what it measured.

--ray also trains each pair on a local Ray instance started here (core.ray_executor: the node's pool in
an actor that holds the node's GPUs, as on a cluster's GPU node) and says, per pair, the devices the
Ray runs had in effect and whether every array they recorded (A's and B's weights at every epoch, their
predictions) is bitwise the pool's (compare with the "repeat" pair: a GPU run that does not repeat in the
pool cannot match). --ray-nodes N starts a Ray cluster of N nodes here instead (ray.cluster_utils.Cluster, as
tests/test_ray_nodes.py does), each node offering this machine's GPUs and 2 CPUs (2 runs at a time), so that a
pair's runs spread over the nodes: a cluster of several GPU nodes, on one machine whose GPUs every node shares.
It also says how many runs each node's pool has started so far.

    python bench/gpu_check.py [--epochs 20] [--out DIR] [--engines keras_jax,keras_torch] [--ray [--ray-nodes N]]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import ray_executor  # noqa: E402
from core.config import DataConfig  # noqa: E402
from core.engines import ENGINES, gpu_present  # noqa: E402
from core.factors import make_pair, parse_run  # noqa: E402
from core.pair import run_pair  # noqa: E402
from core.pool import WorkerPool  # noqa: E402


def pairs(engine: str, epochs: int) -> dict:
    """The pairs above for one engine, by name."""
    def run(**numerics):
        return parse_run({"engine": {"name": engine}, "training": {"epochs": epochs},
                          "numerics": {"device": "gpu", **numerics}})

    return {
        "repeat": make_pair(DataConfig(), run(), {}),
        "auto-is-gpu": make_pair(DataConfig(), run(device="auto"), {"numerics.device": "gpu"}),
        "tf32-vs-float32": make_pair(DataConfig(), run(tf32="on"), {"numerics.tf32": "off"}, b_starts_from_a_init=True),
        "det-ops": make_pair(DataConfig(), run(), {"numerics.op_determinism": True}, b_starts_from_a_init=True),
        "gpu-vs-cpu": make_pair(DataConfig(), run(tf32="off"), {"numerics.device": "cpu"}, b_starts_from_a_init=True),
    }


def figures(result, elapsed: float) -> dict:
    """What one pair measured, read off its result as the app shows it."""
    s = result.summary
    out = {"complete": result.complete, "pair_s": round(elapsed, 2)}
    for m in ("a", "b"):
        run = s[m]
        if run["status"] not in ("ok", "diverged"):
            out[m] = {"status": run["status"], "message": run["message"]}
            continue
        e = run["effective"]
        out[m] = {"status": run["status"], "device": e["device"], "tf32": e["tf32"],
                  "matmul_precision": e.get("matmul_precision"), "op_determinism": e["op_determinism"],
                  "train_s": round(run["timings"]["train_s"], 3), "final_loss": run["history"][-1]["loss"]}
    if c := s["compare"]:
        out.update(weights_bitwise_equal=c["weights_bitwise_equal"],
                   initial_max_abs_dw=c["per_epoch"][0]["max_abs"], final_max_abs_dw=c["per_epoch"][-1]["max_abs"],
                   first_divergent_epoch=c["first_divergent_epoch"], max_abs_dp=c["prediction_max_abs_delta"],
                   class_changes=c["disagreements"], compared_samples=c["compared_samples"])
    if d := s["diagnosis"]:
        out.update(mechanism=d["mechanism"], sentence=d["sentence"])
    return out


def on_ray(pair, in_pool, address: str) -> dict:
    """The pair trained on Ray at `address`: the devices its runs had in effect, whether it is bitwise the pool's
    result `in_pool`, and the runs each node's pool has started so far."""
    os.environ[ray_executor.RAY_ENV] = address
    try:
        result = run_pair(pair, cache=False)
    finally:
        del os.environ[ray_executor.RAY_ENV]
    s = result.summary
    ray = ray_executor.connect(address)
    return {"complete": result.complete,
            "devices": [s[m]["effective"]["device"] if s[m]["status"] in ("ok", "diverged") else s[m]["message"]
                        for m in "ab"],
            "bitwise_equal_to_pool": result.complete and in_pool.complete and result.same_bits(in_pool),
            "runs_per_node": ray.get([actor.runs_started.remote() for actor, _ in ray_executor.node_pools(ray)])}


def gpu_cluster(nodes: int):
    """A Ray cluster of `nodes` nodes on this machine, each with 2 CPUs and the GPUs Ray finds here (as a node
    started with `ray start` on a GPU machine offers them)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    return cluster


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json")
    parser.add_argument("--engines", default="keras_jax,keras_torch",
                        help="comma-separated engines (those not installed here are skipped)")
    parser.add_argument("--ray", action="store_true", help="each pair on a local Ray instance too (see above)")
    parser.add_argument("--ray-nodes", type=int, default=1,
                        help="with --ray: a Ray cluster of this many nodes on this machine (see above)")
    args = parser.parse_args()
    if not gpu_present():
        print("no NVIDIA GPU visible here (/dev/nvidia<N>, CUDA_VISIBLE_DEVICES): nothing to check", file=sys.stderr)
        return 1
    measured = {}
    pool = WorkerPool(warm=0)
    cluster = gpu_cluster(args.ray_nodes) if args.ray and args.ray_nodes > 1 else None
    try:
        for engine in args.engines.split(","):
            if not ENGINES[engine].available():
                print(f"{engine}: not installed here, skipped", flush=True)
                continue
            for name, pair in pairs(engine, args.epochs).items():
                started = time.perf_counter()
                result = run_pair(pair, pool, cache=False)
                measured[f"{engine} {name}"] = row = figures(result, time.perf_counter() - started)
                if args.ray:
                    row["ray"] = on_ray(pair, result, cluster.address if cluster else "local")
                print(f"{engine} {name}: {json.dumps(row)}", flush=True)
                if args.out:
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / "gpu_check.json").write_text(json.dumps(measured, indent=1))
    finally:
        pool.shutdown()
        if cluster:
            import ray

            ray.shutdown()  # (the driver's connection first: Ray does not remove the node a driver is connected to)
            cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
