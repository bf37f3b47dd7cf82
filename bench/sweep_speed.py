"""A sweep of 20 runs on the local pool, on a local Ray cluster of this machine, and one run at a time.

Default scenario's A (digits, MLP 64-32-10, Adam), Adam's epsilon at 1e-3 ... 1e-6 (4 values, A's own
1e-7 left out) over 4 seeds: 4 x (4 + 1) = 20 runs, nothing cached (every run trained now).
  pool_s        through a pool of the default size, workers warm at the start
  ray_s         on a local Ray cluster started here with one CPU per pool worker, its node pool
                (core.ray_executor.NodePool) started and warm at the start, as the local pool is
  ray_start_s   starting that node pool and its warm workers (once per Ray job: it stays for the next batch)
  sequential_s  through a one-worker pool: one run after another
and runs per minute for each. The goal (issue 12): ray_over_pool at most 1.2.

    python bench/sweep_speed.py [--epochs 20] [--skip-ray]

Figures come last, one per line as `name: value`.
"""

from __future__ import annotations

import argparse
import os
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


def on_ray(pair, plan, cpus: int) -> tuple[float, float]:
    """Seconds to start the node pools warm, then seconds for the sweep."""
    import ray

    os.environ[ray_executor.RAY_ENV] = "local"
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"working_dir": str(ROOT), "excludes": ray_executor.SHIPPED_EXCLUDES})
    try:
        started = time.perf_counter()
        ray.get([actor.warm.remote() for actor, _ in ray_executor.node_pools(ray)])
        start_s = time.perf_counter() - started
        started = time.perf_counter()
        outcomes = analysis.execute(pair, plan, cache=False)
        elapsed = time.perf_counter() - started
    finally:
        ray.shutdown()
        del os.environ[ray_executor.RAY_ENV]
    failed = [name for name, o in outcomes.items() if o["type"] != "result"]
    if failed:
        raise SystemExit(f"runs failed on Ray: {failed}")
    return start_s, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    pair = preset(DEFAULT_PRESET).pair(epochs=args.epochs)
    plan = sweep.sweep_plan(pair, sweep.make_sweep(pair, "optimizer.epsilon", [1e-3, 1e-4, 1e-5, 1e-6], 4))
    workers = default_max_workers()
    figures = {"cpus": os.cpu_count(), "pool_workers": workers, "runs": len(plan)}
    figures["pool_s"] = timed(pair, plan, workers)
    if not args.skip_ray:
        figures["ray_start_s"], figures["ray_s"] = on_ray(pair, plan, workers)
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
