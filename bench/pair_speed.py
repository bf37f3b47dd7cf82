"""How fast a pair trains, side by side in one run, reported as ratios.

Default scenario: digits, MLP 64-32-10, Adam, 20 epochs, batch 32.
  naive      one fresh Python process that imports TensorFlow and calls model.fit
             twice with stock settings (shuffle=True, verbose=1, default threads)
  cold       run_pair with a pool that has no warm worker (each run imports TF)
  warm       run_pair with workers already warm (TF imported), median of --repeat
  checks     the default scenario (adam-epsilon) warm, with and without the runs that
             diagnose why A and B differ (core.diagnosis: A again), as a ratio
  engines    for Keras 3 on TensorFlow, JAX and PyTorch: the warm pair (run-it-twice on that
             engine) against the naive script under that KERAS_BACKEND, and each pair's time
             over the TensorFlow pair's (jax_pair_over_tf_pair, torch_pair_over_tf_pair); the
             same pair one run after the other over side by side (both at the framework's
             default threads), and at the default threads over one thread per worker
Also: peak memory of this process and of each worker. (That each engine's run is bitwise a plain script's
is a test: tests/test_plain_scripts.py.)

    python bench/pair_speed.py [--epochs 20] [--repeat 3]

Figures come last, one per line as `name: value`, ending with naive_over_warm,
naive_fit_only_over_warm and checks_over_pair.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.engines import ENGINES  # noqa: E402
from core.factors import make_pair  # noqa: E402
from core.pair import run_pair  # noqa: E402
from core.pool import WorkerPool  # noqa: E402
from core.presets import DEFAULT_PRESET, preset  # noqa: E402

NAIVE = """
import sys, time
import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
x_train = ((x_train - x_train.mean(0)) / np.where(x_train.std(0) == 0, 1, x_train.std(0))).astype("float32")
fit_s = 0.0
for _ in range(2):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x_train, y_train, epochs=int(sys.argv[1]), batch_size=32)
    fit_s += time.perf_counter() - started
print(f"fit_s: {fit_s}", file=sys.stderr)
"""


def naive(epochs: int, backend: str = "tensorflow") -> tuple[float, float]:
    """(whole process seconds, seconds inside the two fit calls), Keras 3 on `backend`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": backend}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", NAIVE, str(epochs)], capture_output=True, text=True, env=env,
                          check=True)
    total = time.perf_counter() - started
    fit_line = [line for line in done.stderr.splitlines() if line.startswith("fit_s: ")][-1]
    return total, float(fit_line.split()[1])


def timed_pair(pool: WorkerPool, pair, checks: bool = True) -> tuple[float, object]:
    started = time.perf_counter()
    result = run_pair(pair, pool, cache=False, checks=checks)
    elapsed = time.perf_counter() - started
    assert result.complete, [result.summary[m]["message"] for m in "ab"]
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pair = preset("run-it-twice").pair(epochs=args.epochs)

    naive_total, naive_fit = naive(args.epochs)
    cold_pool = WorkerPool(warm=0)
    cold, _ = timed_pair(cold_pool, pair)
    cold_pool.shutdown()

    pool = WorkerPool(warm=2)
    warm_times, result = [], None
    for _ in range(args.repeat):
        pool.wait_warm()
        elapsed, result = timed_pair(pool, pair)
        warm_times.append(elapsed)
    warm = statistics.median(warm_times)
    default, with_checks, without = preset(DEFAULT_PRESET).pair(epochs=args.epochs), [], []
    for _ in range(args.repeat):
        for checks, times in ((False, without), (True, with_checks)):
            pool.wait_warm()
            times.append(timed_pair(pool, default, checks)[0])
    pool.shutdown()
    per_engine = {name: engine_figures(name, args.epochs, args.repeat) for name in ENGINE_RUNS}

    a, b = result.summary["a"], result.summary["b"]
    figures = {
        "scenario": f"digits MLP 64-32-10 Adam, {args.epochs} epochs, batch 32, {os.cpu_count()} CPUs",
        "naive_total_s": naive_total,
        "naive_fit_only_s": naive_fit,
        "pair_cold_s": cold,
        "pair_warm_s": warm,
        "pair_warm_all_s": " ".join(f"{t:.3f}" for t in warm_times),
        "worker_train_s_a": a["timings"]["train_s"],
        "worker_build_s_a": a["timings"]["build_s"],
        "caller_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb_a": a["peak_rss_mb"],
        "worker_peak_rss_mb_b": b["peak_rss_mb"],
        "cold_over_warm": cold / warm,
        "naive_over_warm": naive_total / warm,
        "naive_fit_only_over_warm": naive_fit / warm,
        "default_pair_warm_s": statistics.median(without),
        "default_pair_with_checks_warm_s": statistics.median(with_checks),
        "checks_over_pair": statistics.median(with_checks) / statistics.median(without),
    }
    for name, measured in per_engine.items():
        figures.update({f"{name}_{key}": value for key, value in measured.items()})
    tf_pair = per_engine["keras"]["pair_warm_s"]
    figures["jax_pair_over_tf_pair"] = per_engine["keras_jax"]["pair_warm_s"] / tf_pair
    figures["torch_pair_over_tf_pair"] = per_engine["keras_torch"]["pair_warm_s"] / tf_pair
    print_figures(figures)


ENGINE_RUNS = ("keras", "keras_jax", "keras_torch")  # Keras 3 on each backend, the same plain fit


def engine_figures(name: str, epochs: int, repeat: int) -> dict:
    """One engine's warm pair (run-it-twice on it) against the naive script on its backend; and the same pair at
    the framework's default threads one run after the other, and side by side with one thread per worker."""
    pair = preset("run-it-twice").pair(epochs=epochs)
    pair = make_pair(pair.data, pair.a.with_value("engine.name", name), {})
    warm, result = warm_pair(pair, repeat)
    one_after_other, _ = warm_pair(pair, repeat, max_workers=1)
    one_thread = pair.a.with_value("numerics.intra_threads", 1).with_value("numerics.inter_threads", 1)
    on_one_thread, _ = warm_pair(make_pair(pair.data, one_thread, {}), repeat)
    naive_total, _ = naive(epochs, ENGINES[name].framework)
    return {"pair_warm_s": warm, "naive_total_s": naive_total, "naive_over_warm": naive_total / warm,
            "one_after_other_over_side_by_side": one_after_other / warm,
            "default_threads_over_one_thread": warm / on_one_thread,
            "worker_train_s": result.summary["a"]["timings"]["train_s"],
            "worker_peak_rss_mb": result.summary["a"]["peak_rss_mb"]}


def warm_pair(pair, repeat: int, max_workers: int = 2) -> tuple[float, object]:
    """(median seconds, last result) of `pair` through a pool of warm workers; one worker: A, then B."""
    pool = WorkerPool(max_workers=max_workers, warm=max_workers, warm_run=pair.a)
    times = []
    for _ in range(repeat):
        pool.wait_warm()
        elapsed, result = timed_pair(pool, pair, checks=False)
        times.append(elapsed)
    pool.shutdown()
    return statistics.median(times), result


def print_figures(figures: dict) -> None:
    """One `name: value` line each, the form the benchmarks promise."""
    for name, value in figures.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
