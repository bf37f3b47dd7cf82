"""A sweep of 20 runs on the local pool, on a local Ray cluster of this machine, and one run at a time.

Default scenario's A (digits, MLP 64-32-10, Adam), Adam's epsilon at 1e-3 ... 1e-6 (4 values, A's own
1e-7 left out) over 4 seeds: 4 x (4 + 1) = 20 runs, nothing cached (every run trained now).
  pool_s        through a pool of the default size, workers warm at the start
  ray_s         on a local Ray cluster started here with one CPU per pool worker, its node pool
                (core.ray_executor.NodePool) started and warm at the start, as the local pool is
  ray_start_s   starting that node pool and its warm workers (once per Ray job: it stays for the next batch)
  sequential_s  through a one-worker pool: one run after another (once)
and runs per minute for each. pool_s and ray_s are medians of --repeat sweeps each (one sweep of each swung the
ratio from 0.95 to 1.28 here): the pool's, then Ray's on one cluster. The goal (issue 12): ray_over_pool at
most 1.2.

    python bench/sweep_speed.py [--epochs 20] [--repeat 3] [--skip-ray]

Figures come last, one per line as `name: value`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from analysis_speed import timed  # noqa: E402
from pair_speed import print_figures  # noqa: E402

from core import analysis, ray_executor, sweep  # noqa: E402
from core.pool import default_max_workers  # noqa: E402
from core.presets import DEFAULT_PRESET, preset  # noqa: E402


@contextlib.contextmanager
def local_ray(cpus: int):
    """A local Ray cluster of this machine, its node pools started and warm: the seconds that took."""
    import ray

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"working_dir": str(ROOT), "excludes": ray_executor.SHIPPED_EXCLUDES})
    try:
        started = time.perf_counter()
        ray.get([actor.warm.remote() for actor, _ in ray_executor.node_pools(ray)])
        yield time.perf_counter() - started
    finally:
        ray.shutdown()


def on_ray(pair, plan) -> float:
    """Seconds for the sweep on the Ray cluster this process is connected to (the batch goes to Ray while
    core.ray_executor's variable is set)."""
    os.environ[ray_executor.RAY_ENV] = "local"
    try:
        started = time.perf_counter()
        outcomes = analysis.execute(pair, plan, cache=False)
        elapsed = time.perf_counter() - started
    finally:
        del os.environ[ray_executor.RAY_ENV]
    failed = [name for name, o in outcomes.items() if o["type"] != "result"]
    if failed:
        raise SystemExit(f"runs failed on Ray: {failed}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="sweeps on each (the pool's first, then Ray's)")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    pair = preset(DEFAULT_PRESET).pair(epochs=args.epochs)
    plan = sweep.sweep_plan(pair, sweep.make_sweep(pair, "optimizer.epsilon", [1e-3, 1e-4, 1e-5, 1e-6], 4))
    workers = default_max_workers()
    figures = {"cpus": os.cpu_count(), "pool_workers": workers, "runs": len(plan)}
    pool_times = [timed(pair, plan, workers) for _ in range(args.repeat)]
    figures["pool_s"] = statistics.median(pool_times)
    figures["pool_all_s"] = " ".join(f"{t:.2f}" for t in pool_times)
    if not args.skip_ray:  # (after the pool's, so that the pool's sweeps share the CPUs with no idle cluster)
        with local_ray(workers) as figures["ray_start_s"]:
            ray_times = [on_ray(pair, plan) for _ in range(args.repeat)]
        figures["ray_s"] = statistics.median(ray_times)
        figures["ray_all_s"] = " ".join(f"{t:.2f}" for t in ray_times)
    figures["sequential_s"] = timed(pair, plan, 1)
    for name in ("pool", "ray", "sequential"):
        if f"{name}_s" in figures:
            figures[f"{name}_runs_per_min"] = 60 * len(plan) / figures[f"{name}_s"]
    if "ray_s" in figures:
        figures["ray_over_pool"] = figures["ray_s"] / figures["pool_s"]
    figures["sequential_over_pool"] = figures["sequential_s"] / figures["pool_s"]
    print_figures(figures)


if __name__ == "__main__":
    main()
