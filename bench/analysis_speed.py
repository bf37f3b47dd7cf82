"""The Attribution page's default batch with the worker pool against one run after another.

Default scenario (digits, MLP 64-32-10, Adam, 20 epochs), the page's default batch:
attribution (A, B, each factor swapped) + the seed-noise floor (3 other seeds) + run
it twice, nothing cached (every run trained now).
  pool_s         the batch through a pool of the default size, workers warm at the start
  sequential_s   the same runs through a one-worker pool: one after another, each in a
                 fresh worker (the next one can only start importing TensorFlow when the
                 previous run has ended), the first one warm

    python bench/analysis_speed.py [--seeds 3] [--epochs 20]

Figures come last, one per line as `name: value`, ending with sequential_over_pool.
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

from pair_speed import print_figures  # noqa: E402

from core import analysis  # noqa: E402
from core.batch import to_train  # noqa: E402
from core.data import load  # noqa: E402
from core.pool import WorkerPool, default_max_workers  # noqa: E402
from core.presets import DEFAULT_PRESET, preset  # noqa: E402


def timed(pair, plan, workers: int) -> float:
    pool = WorkerPool(max_workers=workers, warm=workers)
    try:
        pool.wait_warm()
        started = time.perf_counter()
        outcomes = analysis.execute(pair, plan, pool, cache=False)
        elapsed = time.perf_counter() - started
    finally:
        pool.shutdown()
    failed = [name for name, o in outcomes.items() if o["type"] != "result"]
    if failed:
        raise SystemExit(f"runs failed: {failed}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    pair = preset(DEFAULT_PRESET).pair(epochs=args.epochs)
    plan = {**analysis.attribution_plan(pair), **analysis.noise_plan(pair, args.seeds),
            **analysis.run_twice_plan(pair)}
    runs = len(to_train(plan, load(pair.data).fingerprint(), cache=False))
    workers = default_max_workers()
    pool_s = timed(pair, plan, workers)
    sequential_s = timed(pair, plan, 1)
    print_figures({
        "cpus": os.cpu_count(),
        "pool_workers": workers,
        "runs_trained": runs,
        "pool_s": pool_s,
        "sequential_s": sequential_s,
        "sequential_over_pool": sequential_s / pool_s,
    })


if __name__ == "__main__":
    main()
