"""Train a pair, A and B, and keep the result as plain data.

A result is a JSON-able summary (config, both runs' histories and settings in
effect, the comparison) plus NumPy arrays (weights per epoch, predictions, the test
inputs), written as `result.json` + `arrays.npz`. Each run comes from core.batch's
run cache when it was trained before: the same pair twice is bitwise the same, and
a pair that changes only B trains only B.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import data as data_module
from core import diagnosis
from core.batch import (Planned, RunCache, as_reloaded, default_cache, json_default, library_versions, run_batch,
                        run_keys)
from core.compare import compare_runs
from core.config import ConfigError, PairConfig, run_to_dict
from core.factors import not_applied
from core.pool import DEFAULT_TIMEOUT_S, Progress, WorkerPool

MODELS = ("a", "b")


def pair_plan(pair: PairConfig, a: str = "a", b: str = "b") -> dict[str, Planned]:
    """A and B under the names given; B is a second, independent training when nothing sets it apart from A."""
    if pair.same_process:  # B is the second model of A's process
        return {a: Planned(pair.a), b: Planned(pair.b, after=a)}
    init = a if pair.b_starts_from_a_init else None
    return {a: Planned(pair.a), b: Planned(pair.b, init, repeat=int(pair.b == pair.a and init is None))}


@dataclass
class PairResult:
    summary: dict  # JSON-able: key, config, data, a, b, compare, versions
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    cached: bool = False  # served from the cache rather than trained now

    @property
    def complete(self) -> bool:
        """Both runs finished (a diverged run counts: divergence is a result)."""
        return all(self.summary[m]["status"] in ("ok", "diverged") for m in MODELS)

    def weights(self, model: str) -> dict[str, np.ndarray]:
        prefix = f"{model}/weights/"
        return {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    def prediction_history(self, model: str) -> np.ndarray:
        """(recorded epochs, test samples, outputs); index 0 is before training."""
        return self.arrays[f"{model}/predictions"]

    def recorded_epochs(self, model: str) -> list[int]:
        """The epoch of each snapshot in weights() and prediction_history() (0 = initialisation)."""
        return self.summary[model]["recorded_epochs"]

    def predictions(self, model: str) -> np.ndarray:
        """Final test predictions: class probabilities, or the regression output in column 0."""
        return self.prediction_history(model)[-1]

    def same_bits(self, other: PairResult) -> bool:
        """Every recorded array (both runs' weights at every epoch, their predictions...) bitwise equal in `other`."""
        return self.arrays.keys() == other.arrays.keys() and all(
            self.arrays[k].tobytes() == other.arrays[k].tobytes() for k in self.arrays)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "result.json").write_text(json.dumps(self.summary, indent=1, default=json_default))
        np.savez(directory / "arrays.npz", **self.arrays)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PairResult:
        directory = Path(directory)
        summary = json.loads((directory / "result.json").read_text())
        with np.load(directory / "arrays.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls(summary, arrays)


def _run_summary(run, outcome: dict) -> dict:
    base = {"config": run_to_dict(run), "not_applied": not_applied(run)}
    if outcome["type"] == "error":
        return {**base, "status": "cancelled" if outcome.get("cancelled") else "error",
                "message": outcome["message"], "history": [], "recorded_epochs": [], "diverged_epoch": None}
    diverged = outcome["diverged_epoch"]
    return {
        **base,
        "status": "diverged" if diverged else "ok",
        "message": f"diverged at epoch {diverged}: the loss became non-finite" if diverged else "",
        "diverged_epoch": diverged,
        **{k: outcome[k] for k in ("history", "recorded_epochs", "effective", "versions", "timings", "n_train_rows",
                                   "peak_rss_mb")},
    }


def full_plan(pair: PairConfig, checks: bool = True) -> dict[str, Planned]:
    """A and B, and (with `checks`) the runs the diagnosis of why they differ needs."""
    return {**pair_plan(pair), **(diagnosis.checks_plan(pair) if checks else {})}


def cached_result(pair: PairConfig, cache: RunCache | None = None, checks: bool = True) -> PairResult | None:
    """The pair's result if the cache has all its runs (nothing is trained); None otherwise, or if the data
    cannot load."""
    cache = cache or default_cache()
    if cache.empty():  # a fresh server: answer without loading the data (the first page draws sooner)
        return None
    try:
        ds = data_module.load(pair.data)
    except ConfigError:
        return None
    plan = full_plan(pair, checks)
    keys = run_keys(plan, ds.fingerprint())
    outcomes = {name: cache.get(key) for name, key in keys.items()}
    return None if None in outcomes.values() else _assemble(pair, ds, keys, outcomes, checks)


def run_pair(pair: PairConfig, pool: WorkerPool | None = None, on_event: Progress | None = None,
             cancel: threading.Event | None = None, cache: RunCache | None | bool = True,
             timeout_s: float = DEFAULT_TIMEOUT_S, reuse: bool = True, checks: bool = True) -> PairResult:
    """Train A and B in fresh workers (each served from the run cache if it was trained before),
    and with `checks` the runs that diagnose why they differ (core.diagnosis).

    Raises ConfigError for data that cannot be loaded; a failed run comes back as a
    result whose run has status 'error' (or 'cancelled') and a message.
    `cache=True` uses the default cache, `False`/None skips it; `reuse=False` trains both
    afresh and puts them in the cache in place of earlier trainings.
    """
    ds = data_module.load(pair.data)
    plan = full_plan(pair, checks)
    outcomes = run_batch(plan, ds, pool, on_event, cancel, cache, timeout_s, reuse)
    return _assemble(pair, ds, run_keys(plan, ds.fingerprint()), outcomes, checks)


def _assemble(pair: PairConfig, ds, keys: dict[str, str], outcomes: dict[str, dict], checks: bool) -> PairResult:
    arrays = {"data/x_test": ds.x_test, "data/y_test": ds.y_test}
    if ds.grid is not None:
        arrays["data/grid"] = ds.grid
    summary = {
        "key": hashlib.sha256((keys["a"] + keys["b"]).encode()).hexdigest()[:20],
        "config": pair.to_dict(),
        "data": {"description": ds.description, "task": ds.task, "n_classes": ds.n_classes,
                 "n_train": len(ds.x_train), "n_test": len(ds.x_test), "feature_names": ds.feature_names,
                 "image_shape": ds.image_shape, "class_names": ds.class_names, "fingerprint": ds.fingerprint()},
        "versions": library_versions(),
        "compare": None,
        "diagnosis": None,
    }
    runs = {"a": pair.a, "b": pair.b}
    for m in MODELS:
        summary[m] = _run_summary(runs[m], outcomes[m])
        if outcomes[m]["type"] == "result":
            arrays[f"{m}/predictions"] = outcomes[m]["predictions"]
            if outcomes[m]["grid_predictions"] is not None:
                arrays[f"{m}/grid_predictions"] = outcomes[m]["grid_predictions"]
            arrays.update({f"{m}/weights/{k}": v for k, v in outcomes[m]["weights"].items()})
    result = PairResult(summary, arrays, cached=all(o.get("cached") for o in outcomes.values()))
    if result.complete:
        summary["compare"] = compare_runs(result.weights("a"), result.weights("b"),
                                          result.prediction_history("a"), result.prediction_history("b"), ds.task,
                                          result.recorded_epochs("a"), result.recorded_epochs("b"))
        if checks:
            summary["diagnosis"] = diagnosis.diagnose(pair, summary["compare"], outcomes, ds.task)
    result.summary = as_reloaded(summary)
    return result
