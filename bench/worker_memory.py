"""Each engine's worker memory: the anonymous memory (RssAnon, what no other process shares) and the
resident set of one worker process, sampled every 50 ms while it trains the default network for 20
epochs on digits. core.engines.Engine.worker_mb is this anonymous peak plus a margin.

    python bench/worker_memory.py [--epochs 20]

One line per engine: `name: anon_peak_mb rss_peak_mb`.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import DataConfig  # noqa: E402
from core.data import load  # noqa: E402
from core.engines import ENGINES  # noqa: E402
from core.factors import parse_run  # noqa: E402
from core.pool import Job, WorkerPool, run_jobs  # noqa: E402


def memory_mb(pid: int) -> tuple[float, float]:
    """(RssAnon, VmRSS) of a process, in MB (Linux)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["RssAnon"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def peak_while_training(name: str, epochs: int, ds) -> tuple[float, float]:
    pool = WorkerPool(max_workers=1, warm=0)
    peak, done = [0.0, 0.0], threading.Event()

    def sample():
        while not done.is_set():
            for worker in list(pool.busy):
                try:
                    peak[:] = [max(p, m) for p, m in zip(peak, memory_mb(worker.proc.pid))]
                except (OSError, KeyError):  # it ended between the listing and the read
                    pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    outcome = run_jobs(pool, [Job("a", parse_run({"engine": {"name": name}, "training": {"epochs": epochs}}), ds)])
    done.set()
    sampler.join()
    pool.shutdown()
    assert outcome["a"]["type"] == "result", outcome["a"].get("message")
    return peak[0], peak[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    ds = load(DataConfig())
    for name, engine in ENGINES.items():
        if engine.available():
            anon, rss = peak_while_training(name, args.epochs, ds)
            print(f"{name}: {anon:.0f} {rss:.0f}  (worker_mb {engine.worker_mb})")


if __name__ == "__main__":
    main()
