"""Named runs trained as one batch, each served from the run cache when it was trained before.

A run is keyed by its config, where its initial weights come from (the key of the
run it copies them from), which independent repeat of that config it is, the data's
fingerprint and the library versions. So the pair's A and B, an attribution's
swapped runs, the noise floor's seeds and the staircase's steps are each trained
once, in a fresh worker, and reused by every analysis that plans the same run; two
names in one plan with the same key are one run. A repeat (`repeat=1`) is a second,
independent training of the same config: what "run it twice" and two identical
models A and B need.

A run's outcome is the worker's result message (history, settings in effect,
weights per epoch, predictions); the cache keeps it as `run.json` + `arrays.npz`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from core.config import RunConfig, run_to_dict
from core.pool import DEFAULT_TIMEOUT_S, Job, Progress, WorkerPool, default_pool, run_jobs

PACKAGES = ("tensorflow", "keras", "tf-keras", "numpy", "scikit-learn", "pandas")
ARRAYS = ("predictions", "grid_predictions")  # outcome fields kept as arrays, besides the weights
RECORD_VERSION = 2  # part of every key: raise it when what a worker records changes, so old entries are not served


@dataclass(frozen=True)
class Planned:
    run: RunConfig
    init_from: str | None = None  # name of the planned run whose initial weights this one copies
    repeat: int = 0  # 0: the run of this config; n: its n-th independent training in another fresh worker


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed versions, read once per process without importing TensorFlow (every run key needs them)."""
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def plain(summary: dict) -> dict:
    """Exactly what a reload from JSON gives, so a fresh outcome and a cached one compare equal."""
    return json.loads(json.dumps(summary, default=json_default))


def run_keys(plan: dict[str, Planned], data_fingerprint: str) -> dict[str, str]:
    """name -> cache key; a run's initial-weights source must be planned before it."""
    keys: dict[str, str] = {}
    versions = library_versions()
    for name, p in plan.items():
        if p.init_from is not None and p.init_from not in keys:
            raise ValueError(f"{name!r} copies the initial weights of {p.init_from!r}, which is not planned before it")
        blob = json.dumps({"run": run_to_dict(p.run), "init_from": keys.get(p.init_from), "repeat": p.repeat,
                           "data": data_fingerprint, "versions": versions, "record": RECORD_VERSION}, sort_keys=True)
        keys[name] = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return keys


class RunCache:
    """Recent outcomes in memory in front of a directory of saved ones."""

    def __init__(self, directory: str | Path | None = None, memory_items: int = 32):
        self.directory = Path(directory or os.environ.get("DIVERGENCE_LAB_CACHE")
                              or Path.home() / ".cache" / "divergence-lab") / "runs"
        self.memory: OrderedDict[str, dict] = OrderedDict()
        self.memory_items = memory_items
        self.lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        """A copy of the outcome (callers may add fields), marked cached; None on a miss."""
        with self.lock:
            outcome = self.memory.get(key)
            if outcome is not None:
                self.memory.move_to_end(key)
        if outcome is None:
            outcome = self._load(self.directory / key)
            if outcome is None:
                return None
            self._remember(key, outcome)
        return {**outcome, "cached": True}

    def has(self, key: str) -> bool:
        with self.lock:
            if key in self.memory:
                return True
        return (self.directory / key / "arrays.npz").exists()

    def put(self, key: str, outcome: dict) -> None:
        self._remember(key, outcome)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.directory, prefix=".tmp-"))
        arrays = {f"weights/{k}": v for k, v in outcome["weights"].items()}
        arrays.update({k: outcome[k] for k in ARRAYS if outcome.get(k) is not None})
        np.savez(tmp / "arrays.npz", **arrays)
        summary = {k: v for k, v in outcome.items() if k not in ("weights", *ARRAYS, "cached")}
        (tmp / "run.json").write_text(json.dumps(summary, default=json_default))
        try:
            tmp.rename(self.directory / key)
        except OSError:  # another thread stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _load(path: Path) -> dict | None:
        try:
            summary = json.loads((path / "run.json").read_text())
            with np.load(path / "arrays.npz") as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, KeyError):  # missing or damaged: a miss, not an error
            return None
        weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
        return {**summary, "weights": weights, **{k: arrays.get(k) for k in ARRAYS}}

    def _remember(self, key: str, outcome: dict) -> None:
        with self.lock:
            self.memory[key] = outcome
            self.memory.move_to_end(key)
            while len(self.memory) > self.memory_items:
                self.memory.popitem(last=False)


_default_cache: RunCache | None = None


def default_cache() -> RunCache:
    global _default_cache
    if _default_cache is None:
        _default_cache = RunCache()
    return _default_cache


def _resolve(cache: RunCache | None | bool) -> RunCache | None:
    """`True` is the default cache; `False` or None trains everything."""
    return default_cache() if cache is True else (cache or None)


def to_train(plan: dict[str, Planned], data_fingerprint: str, cache: RunCache | None | bool = True) -> list[str]:
    """The names that a batch would train now: one per key, none the cache has."""
    cache, keys = _resolve(cache), run_keys(plan, data_fingerprint)
    first = {}
    for name, key in keys.items():
        first.setdefault(key, name)
    return [name for key, name in first.items() if cache is None or not cache.has(key)]


def run_batch(plan: dict[str, Planned], ds, pool: WorkerPool | None = None, on_event: Progress | None = None,
              cancel: threading.Event | None = None, cache: RunCache | None | bool = True,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, dict]:
    """name -> outcome for every planned run; each finished run is cached as soon as it ends.

    Runs served from the cache (or shared with another name of the same key) report one
    {"type": "cached"} event; failed runs come back as {"type": "error", "message": ...}.
    """
    cache, keys = _resolve(cache), run_keys(plan, ds.fingerprint())
    on_event = on_event or (lambda name, event: None)
    names_of: dict[str, list[str]] = {}
    for name, key in keys.items():
        names_of.setdefault(key, []).append(name)
    trained_as = {name: names[0] for names in names_of.values() for name in names}  # name -> the name trained
    outcomes: dict[str, dict] = {}
    for key, (first, *_) in names_of.items():
        if cache is not None and (hit := cache.get(key)) is not None:
            outcomes[first] = hit
    initial = {name: {k: v[0] for k, v in o["weights"].items()} for name, o in outcomes.items()}

    def keep(name: str, outcome: dict) -> None:
        outcome = {**outcome, **plain({k: v for k, v in outcome.items() if k not in ("weights", *ARRAYS)})}
        outcomes[name] = outcome
        if cache is not None:
            cache.put(keys[name], outcome)

    jobs = [Job(name, p.run, ds, trained_as[p.init_from] if p.init_from else None)
            for name, p in plan.items() if trained_as[name] == name and name not in outcomes]
    for name in plan:
        if trained_as[name] != name or name in outcomes:
            on_event(name, {"type": "cached"})
    failed = run_jobs(pool or default_pool(), jobs, on_event, cancel, timeout_s, initial=initial, on_result=keep)
    outcomes.update({name: o for name, o in failed.items() if o["type"] != "result"})
    return {name: outcomes[trained_as[name]] for name in plan}
