"""Train a pair, A and B, and keep the result as plain data, cached.

A result is a JSON-able summary (config, both runs' histories and settings in
effect, the comparison) plus NumPy arrays (weights per epoch, predictions, the test
inputs), written as `result.json` + `arrays.npz`. It is keyed by the validated pair
config, the data's fingerprint and the library versions: the same pair twice is
served from memory or disk and is bitwise the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from core import data as data_module
from core.compare import compare_runs
from core.config import ConfigError, PairConfig, run_to_dict
from core.factors import not_applied
from core.pool import DEFAULT_TIMEOUT_S, Job, Progress, WorkerPool, default_pool, run_jobs

PACKAGES = ("tensorflow", "keras", "tf-keras", "numpy", "scikit-learn", "pandas")
MODELS = ("a", "b")


def library_versions() -> dict[str, str]:
    """Installed versions, read without importing TensorFlow."""
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cache_key(pair: PairConfig, data_fingerprint: str) -> str:
    blob = json.dumps({"pair": pair.to_dict(), "data": data_fingerprint, "versions": library_versions()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


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
        """(epochs + 1, test samples, outputs); index 0 is before training."""
        return self.arrays[f"{model}/predictions"]

    def predictions(self, model: str) -> np.ndarray:
        """Final test predictions: class probabilities, or the regression output in column 0."""
        return self.prediction_history(model)[-1]

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "result.json").write_text(json.dumps(self.summary, indent=1, default=_json_default))
        np.savez(directory / "arrays.npz", **self.arrays)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PairResult:
        directory = Path(directory)
        summary = json.loads((directory / "result.json").read_text())
        with np.load(directory / "arrays.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls(summary, arrays)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class ResultCache:
    """Memory (most recent few) in front of a directory of saved results."""

    def __init__(self, directory: str | Path | None = None, memory_items: int = 16):
        self.directory = Path(directory or os.environ.get("DIVERGENCE_LAB_CACHE")
                              or Path.home() / ".cache" / "divergence-lab")
        self.memory: OrderedDict[str, PairResult] = OrderedDict()
        self.memory_items = memory_items
        self.lock = threading.Lock()

    def get(self, key: str) -> PairResult | None:
        with self.lock:
            if key in self.memory:
                self.memory.move_to_end(key)
                return self.memory[key]
        path = self.directory / key
        if not (path / "arrays.npz").exists():
            return None
        try:
            result = PairResult.load(path)
        except (OSError, ValueError, KeyError):  # a damaged entry is a miss, not an error
            return None
        self._remember(key, result)
        return result

    def put(self, key: str, result: PairResult) -> None:
        self._remember(key, result)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.directory, prefix=".tmp-"))
        result.save(tmp)
        try:
            tmp.rename(self.directory / key)
        except OSError:  # another thread stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)

    def _remember(self, key: str, result: PairResult) -> None:
        with self.lock:
            self.memory[key] = result
            self.memory.move_to_end(key)
            while len(self.memory) > self.memory_items:
                self.memory.popitem(last=False)


_default_cache: ResultCache | None = None


def default_cache() -> ResultCache:
    global _default_cache
    if _default_cache is None:
        _default_cache = ResultCache()
    return _default_cache


def _run_summary(run, outcome: dict) -> dict:
    base = {"config": run_to_dict(run), "not_applied": not_applied(run)}
    if outcome["type"] == "error":
        return {**base, "status": "cancelled" if outcome.get("cancelled") else "error",
                "message": outcome["message"], "history": [], "diverged_epoch": None}
    diverged = outcome["diverged_epoch"]
    return {
        **base,
        "status": "diverged" if diverged else "ok",
        "message": f"diverged at epoch {diverged}: the loss became non-finite" if diverged else "",
        "diverged_epoch": diverged,
        **{k: outcome[k] for k in ("history", "effective", "versions", "timings", "n_train_rows", "peak_rss_mb")},
    }


def cached_result(pair: PairConfig, cache: ResultCache | None = None) -> PairResult | None:
    """The pair's result if the cache has it (nothing is trained); None otherwise or if the data cannot load."""
    try:
        key = cache_key(pair, data_module.load(pair.data).fingerprint())
    except ConfigError:
        return None
    hit = (cache or default_cache()).get(key)
    return None if hit is None else PairResult(hit.summary, hit.arrays, cached=True)


def run_pair(pair: PairConfig, pool: WorkerPool | None = None, on_event: Progress | None = None,
             cancel: threading.Event | None = None, cache: ResultCache | None | bool = True,
             timeout_s: float = DEFAULT_TIMEOUT_S) -> PairResult:
    """Train A and B in fresh workers (or serve them from the cache).

    Raises ConfigError for data that cannot be loaded; a failed run comes back as a
    result whose run has status 'error' (or 'cancelled') and a message.
    `cache=True` uses the default cache, `False`/None skips it.
    """
    cache = default_cache() if cache is True else (cache or None)
    if cache is not None and (hit := cached_result(pair, cache)) is not None:
        return hit
    ds = data_module.load(pair.data)
    key = cache_key(pair, ds.fingerprint())
    jobs = [Job("a", pair.a, ds), Job("b", pair.b, ds, init_from="a" if pair.b_starts_from_a_init else None)]
    outcomes = run_jobs(pool or default_pool(), jobs, on_event, cancel, timeout_s)
    arrays = {"data/x_test": ds.x_test, "data/y_test": ds.y_test}
    if ds.grid is not None:
        arrays["data/grid"] = ds.grid
    summary = {
        "key": key,
        "config": pair.to_dict(),
        "data": {"description": ds.description, "task": ds.task, "n_classes": ds.n_classes,
                 "n_train": len(ds.x_train), "n_test": len(ds.x_test), "feature_names": ds.feature_names,
                 "image_shape": ds.image_shape, "class_names": ds.class_names, "fingerprint": ds.fingerprint()},
        "versions": library_versions(),
        "compare": None,
    }
    runs = {"a": pair.a, "b": pair.b}
    for m in MODELS:
        summary[m] = _run_summary(runs[m], outcomes[m])
        if outcomes[m]["type"] == "result":
            arrays[f"{m}/predictions"] = outcomes[m]["predictions"]
            if outcomes[m]["grid_predictions"] is not None:
                arrays[f"{m}/grid_predictions"] = outcomes[m]["grid_predictions"]
            arrays.update({f"{m}/weights/{k}": v for k, v in outcomes[m]["weights"].items()})
    result = PairResult(summary, arrays)
    if result.complete:
        summary["compare"] = compare_runs(result.weights("a"), result.weights("b"),
                                          result.prediction_history("a"), result.prediction_history("b"), ds.task)
    result.summary = json.loads(json.dumps(summary, default=_json_default))  # exactly what a reload gives
    if result.complete:
        if cache is not None:
            cache.put(key, result)
    return result
