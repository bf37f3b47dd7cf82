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
weights per epoch, predictions). The cache keeps each one as a folder
`<cache>/runs/<key>/`: `arrays.npz` (each variable's weights under `weights/`,
`predictions`, `grid_predictions`) and `run.json` (everything else, plus `entry`: the
SHA-256 of the npz file's bytes and of the rest of run.json). Every load checks both
digests and that the entry holds what a result needs (the fields `run_job` returns,
at least one `weights/` array, `predictions`); anything missing, unreadable, damaged or
incomplete is a miss, never an error: the entry is removed and the retrained run
replaces it (a save also replaces a damaged folder in its place, and keeps a valid one
another thread saved first). `has()` agrees with `get()` and stays cheap: an entry
verified once is trusted while its files keep their inode, mtime and size.

The runs folder is created readable by this user only and kept under
`DIVERGENCE_LAB_CACHE_MB` megabytes (default 2048): after each save the least recently
used entries go (a `get()` counts as a use; the entry just saved always stays, see
`core.storage`). The memory tier in front of it keeps the most recently used outcomes,
at most 32 of them and at most 128 MB of arrays (an outcome larger than that is not
kept in memory).
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
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from core import budget, ray_executor
from core.config import ConfigError, RunConfig, run_to_dict
from core.engines import engine, unavailable
from core.pool import DEFAULT_TIMEOUT_S, Job, Progress, WorkerPool, default_pool, run_jobs
from core.storage import evict_least_recent, limit_bytes, nothing_saved, private_dir, runs_folder, touch

PACKAGES = ("tensorflow", "keras", "tf-keras", "jax", "jaxlib", "torch", "numpy", "scikit-learn", "pandas")
ARRAYS = ("predictions", "grid_predictions", "test_inputs")  # outcome fields kept as arrays, besides the weights
RECORD_VERSION = 5  # part of every key: raise it when what a worker records changes, so old entries are not served
MB = 2**20
DISK_LIMIT_ENV = "DIVERGENCE_LAB_CACHE_MB"
DEFAULT_DISK_MB = 2048  # the runs folder's size limit unless DIVERGENCE_LAB_CACHE_MB says otherwise
DEFAULT_MEMORY_MB = 128  # arrays kept in the memory tier (the Streamlit process may have 690 MB in all)
ENTRY = "entry"  # run.json's field with the entry's digests
# What a cached result must hold besides its arrays (what run_job returns; _run_summary and run_batch read them).
SUMMARY_FIELDS = {"history": list, "recorded_epochs": list, "diverged_epoch": (int, type(None)), "effective": dict,
                  "versions": dict, "timings": dict, "n_train_rows": int, "peak_rss_mb": (int, float),
                  "train_inputs_digest": str}
STALE_S = 3600  # a hidden write or removal in progress older than this was left by a process that died


@dataclass(frozen=True)
class Planned:
    run: RunConfig
    init_from: str | None = None  # name of the planned run whose initial weights this one copies
    repeat: int = 0  # 0: the run of this config; n: its n-th independent training in another fresh worker
    after: str | None = None  # name of the planned run in whose worker this one is built next (one process)


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


def as_reloaded(summary: dict) -> dict:
    """Exactly what a reload from JSON gives, so a fresh outcome and a cached one compare equal."""
    return json.loads(json.dumps(summary, default=json_default))


def run_keys(plan: dict[str, Planned], data_fingerprint: str) -> dict[str, str]:
    """name -> cache key; a run's initial-weights source must be planned before it."""
    keys: dict[str, str] = {}
    versions = library_versions()
    hosts = {p.after: p.run for p in plan.values() if p.after}  # a run whose process builds another after it
    for name, p in plan.items():
        for source in (p.init_from, p.after):
            if source is not None and source not in keys:
                raise ValueError(f"{name!r} needs {source!r}, which is not planned before it")
        blob = json.dumps({"run": run_to_dict(p.run), "init_from": keys.get(p.init_from), "repeat": p.repeat,
                           "after": keys.get(p.after),
                           "then": run_to_dict(hosts[name]) if name in hosts else None,
                           "data": data_fingerprint, "versions": versions, "record": RECORD_VERSION}, sort_keys=True)
        keys[name] = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return keys


def _summary_digest(summary: dict) -> str:
    """SHA-256 of the summary as JSON reloads it (key order and number formatting fixed)."""
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _valid_summary(summary) -> bool:
    """The fields a result needs, each of the type the worker gives it."""
    if not isinstance(summary, dict) or summary.get("type") != "result":
        return False
    for field, kind in SUMMARY_FIELDS.items():
        value = summary.get(field, ...)
        if not isinstance(value, kind) or isinstance(value, bool):
            return False
    return (all(isinstance(row, dict) for row in summary["history"])
            and all(isinstance(e, int) and not isinstance(e, bool) for e in summary["recorded_epochs"]))


def _valid_names(names) -> bool:
    return {"predictions", "test_inputs"} <= set(names) and any(
        n.startswith("weights/") and len(n) > len("weights/") for n in names)


def _valid_arrays(arrays: dict) -> bool:
    """Numbers, one entry per recorded epoch along the first axis (run_batch reads each weight's index 0)."""
    return _valid_names(arrays) and all(
        isinstance(v, np.ndarray) and v.dtype.kind in "biufc" and v.ndim >= 1 and v.shape[0] >= 1
        for k, v in arrays.items() if k.startswith("weights/") or k in ARRAYS)


def _nbytes(outcome: dict) -> int:
    arrays = [*outcome.get("weights", {}).values(), *(outcome.get(k) for k in ARRAYS)]
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


def _signature(path: Path) -> tuple[int | None, tuple | None]:
    """(the folder's inode, what changes when its files are rewritten); None for a missing folder or file."""
    try:
        folder = os.stat(path).st_ino
    except OSError:
        return None, None
    try:
        stats = [os.stat(path / name) for name in ("run.json", "arrays.npz")]
    except OSError:
        return folder, None
    return folder, tuple((st.st_ino, st.st_mtime_ns, st.st_size) for st in stats)


def _delete(entry: Path) -> None:
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    except OSError:
        pass


def _load(path: Path, arrays: bool = True) -> dict | None:
    """The entry's outcome (only its summary if not `arrays`), or None if anything is missing or wrong.

    Raises for some damage (unreadable files, broken JSON or zip): the caller counts that as a miss too.
    """
    summary = json.loads((path / "run.json").read_bytes())
    if not isinstance(summary, dict):
        return None
    entry = summary.pop(ENTRY, None)
    if (not isinstance(entry, dict) or not _valid_summary(summary)
            or entry.get("summary_sha256") != _summary_digest(summary)):
        return None
    with open(path / "arrays.npz", "rb") as f:
        if hashlib.file_digest(f, "sha256").hexdigest() != entry.get("arrays_sha256"):
            return None
        f.seek(0)
        with np.load(f, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile) or not _valid_names(npz.files):
                return None
            if not arrays:
                return summary
            data = {k: npz[k] for k in npz.files}
    if not _valid_arrays(data):
        return None
    weights = {k[len("weights/"):]: v for k, v in data.items() if k.startswith("weights/")}
    return {**summary, "weights": weights, **{k: data.get(k) for k in ARRAYS}}


class RunCache:
    """Recent outcomes in memory in front of a directory of saved ones, each verified when read."""

    def __init__(self, directory: str | Path | None = None, memory_items: int = 32,
                 memory_mb: float = DEFAULT_MEMORY_MB, max_mb: float | None = None):
        self.directory = runs_folder(directory)
        self.max_bytes = limit_bytes(DISK_LIMIT_ENV, DEFAULT_DISK_MB) if max_mb is None else int(max_mb * MB)
        self.memory: OrderedDict[str, tuple[dict, int]] = OrderedDict()  # key -> (outcome, bytes of its arrays)
        self.memory_items = memory_items
        self.memory_bytes = int(memory_mb * MB)
        self.memory_used = 0
        self.verified: dict[str, tuple] = {}  # key -> the _signature of its entry when last verified
        self.lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        """A copy of the outcome (callers may add fields), marked cached; None on a miss (a damaged entry goes)."""
        with self.lock:
            item = self.memory.get(key)
            if item is not None:
                self.memory.move_to_end(key)
        if item is None:
            outcome = self._read(key, arrays=True)
            if outcome is None:
                return None
            self._remember(key, outcome)
        else:
            outcome = item[0]
        touch(self.directory / key)  # a use: the disk's least-recently-used order
        return {**outcome, "cached": True}

    def empty(self) -> bool:
        """Nothing saved and nothing in memory: a look-up would miss without loading any data."""
        with self.lock:
            if self.memory:
                return False
        return nothing_saved(self.directory)

    def has(self, key: str) -> bool:
        """Whether get() would serve the run; reads an entry's files only the first time it sees them."""
        with self.lock:
            if key in self.memory:
                return True
        return self._read(key, arrays=False) is not None

    def put(self, key: str, outcome: dict, replace: bool = False) -> None:
        """Keep the outcome in memory and on disk, then trim the disk to its limit (never this entry).

        A disk that cannot be written (full, read-only) leaves the run in memory only. `replace`
        puts a fresh training of a run in place of the one saved before (which is kept otherwise).
        """
        summary = as_reloaded({k: v for k, v in outcome.items() if k not in ("weights", *ARRAYS, "cached")})
        arrays = {f"weights/{k}": v for k, v in outcome.get("weights", {}).items()}
        arrays.update({k: outcome[k] for k in ARRAYS if outcome.get(k) is not None})
        if not _valid_summary(summary) or not _valid_arrays(arrays):
            return  # not a result a later get() could serve
        self._remember(key, outcome)
        try:
            self._write(key, summary, arrays, replace)
        except OSError:
            return
        self._trim(key)

    def _write(self, key: str, summary: dict, arrays: dict, replace: bool) -> None:
        directory = private_dir(self.directory)
        path = directory / key
        tmp = Path(tempfile.mkdtemp(dir=directory, prefix=".tmp-"))
        try:
            np.savez(tmp / "arrays.npz", **arrays)
            entry = {"arrays_sha256": _file_digest(tmp / "arrays.npz"), "summary_sha256": _summary_digest(summary)}
            (tmp / "run.json").write_text(json.dumps({**summary, ENTRY: entry}))
            for _ in range(3):
                try:
                    tmp.rename(path)  # atomic; fails while a non-empty folder is there
                    tmp = None
                    return
                except OSError:
                    # Another thread saved the same key first (keep it), or a damaged entry is in
                    # the way: reading it removes it, and the next rename takes its place.
                    if replace:
                        self._remove(path, os.stat(path).st_ino)
                        self.verified.pop(key, None)
                    elif self._read(key, arrays=False) is not None:
                        return
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _read(self, key: str, arrays: bool) -> dict | None:
        """The verified entry (only its summary if not `arrays`); a damaged or incomplete one is removed."""
        path = self.directory / key
        folder, files = _signature(path)
        if folder is None:
            return None  # no entry
        signature = (folder, files)
        if not arrays and files is not None and self.verified.get(key) == signature:
            return {}  # verified before, unchanged since
        try:
            outcome = _load(path, arrays) if files is not None else None
        except Exception:  # any damage is a miss: unreadable, not JSON, not a zip, a broken array...
            outcome = None
        with self.lock:
            if outcome is None:
                self.verified.pop(key, None)
            else:
                self.verified[key] = signature
        if outcome is None:
            self._remove(path, folder)
        return outcome

    def _remove(self, path: Path, folder: int) -> None:
        """Remove the damaged entry at `path`, unless another thread has put a new folder there since it was read."""
        try:
            if os.stat(path).st_ino != folder:
                return
            trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
            path.rename(trash)  # out of the way at once; readers never see a half-removed entry
        except OSError:
            return
        _delete(trash)

    def _trim(self, key: str) -> None:
        """Evict the least recently used entries beyond the limit, and writes left by processes that died."""
        now = time.time()
        try:
            stale = [e for e in self.directory.iterdir()
                     if e.name.startswith((".tmp-", ".trash-")) and now - e.stat().st_mtime > STALE_S]
        except OSError:
            stale = []
        for entry in stale:
            _delete(entry)
        removed = evict_least_recent(self.directory, self.max_bytes, keep=(self.directory / key,))
        with self.lock:
            for entry in removed:
                self.verified.pop(entry.name, None)

    def _remember(self, key: str, outcome: dict) -> None:
        """Most recent last; the oldest go past `memory_items` outcomes or `memory_bytes` of arrays."""
        size = _nbytes(outcome)
        with self.lock:
            old = self.memory.pop(key, None)
            if old is not None:
                self.memory_used -= old[1]
            if size > self.memory_bytes:
                return  # would push out everything else, and still be over the limit
            self.memory[key] = (outcome, size)
            self.memory_used += size
            while len(self.memory) > self.memory_items or self.memory_used > self.memory_bytes:
                self.memory_used -= self.memory.popitem(last=False)[1][1]


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
              timeout_s: float = DEFAULT_TIMEOUT_S, reuse: bool = True) -> dict[str, dict]:
    """name -> outcome for every planned run; each finished run is cached as soon as it ends.

    Runs served from the cache (or shared with another name of the same key) report one
    {"type": "cached"} event; failed runs come back as {"type": "error", "message": ...}.
    `reuse=False` serves nothing from the cache: every run is trained afresh and replaces its entry.
    """
    cache, keys = _resolve(cache), run_keys(plan, ds.fingerprint())
    on_event = on_event or (lambda name, event: None)
    second = {p.after: name for name, p in plan.items() if p.after}  # host -> the run built after it
    # Two models of one process are never cached: each training of the pair is one sample of its process.
    shared = set(second) | set(second.values())
    names_of: dict[str, list[str]] = {}
    for name, key in keys.items():
        names_of.setdefault(key, []).append(name)
    trained_as = {name: names[0] for names in names_of.values() for name in names}  # name -> the name trained
    outcomes: dict[str, dict] = {}
    for key, (first, *_) in names_of.items():
        if cache is not None and reuse and first not in shared and (hit := cache.get(key)) is not None:
            outcomes[first] = hit
    initial = {name: {k: v[0] for k, v in o["weights"].items()} for name, o in outcomes.items()}

    def keep(name: str, outcome: dict) -> None:
        if name in second:
            keep(second[name], {"type": "result", **outcome.pop("second")})
        outcome = {**outcome, **as_reloaded({k: v for k, v in outcome.items() if k not in ("weights", *ARRAYS)})}
        outcomes[name] = outcome
        if cache is not None and name not in shared:
            cache.put(keys[name], outcome, replace=not reuse)

    def forward(name: str, event: dict) -> None:
        """Events of a host's job; its second model's epochs come marked `second`, its end ends both."""
        if event.get("second"):
            on_event(second[name], event)
            return
        on_event(name, event)
        if name in second and event["type"] in ("started", "done", "error"):
            on_event(second[name], event)

    jobs = [Job(name, p.run, ds, trained_as[p.init_from] if p.init_from else None,
                plan[second[name]].run if name in second else None)
            for name, p in plan.items() if trained_as[name] == name and name not in outcomes and not p.after]
    on_ray = ray_executor.address() is not None  # a Ray cluster runs the batch; its nodes' memory is their own
    pool = None if on_ray else pool or default_pool()
    for job in jobs:  # before any worker starts: a run that cannot run here or would cost too much is refused whole
        for run in (job.run, job.then) if job.then else (job.run,):
            try:
                if missing := unavailable(run):
                    raise ConfigError(f"engine.name: {missing}")
                budget.check(run, ds, None if on_ray else
                             budget.worker_headroom_mb(pool.capacity, engine(run.engine.name).worker_mb))
            except ConfigError as e:
                name = job.key if run is job.run else second[job.key]
                raise ConfigError(f"{name.upper() if len(name) == 1 else name}: {e}") from None
    for name in plan:
        if trained_as[name] != name or name in outcomes:
            on_event(name, {"type": "cached"})
    if on_ray:
        failed = ray_executor.run_jobs(jobs, forward, cancel, timeout_s, initial=initial, on_result=keep)
    else:
        failed = run_jobs(pool, jobs, forward, cancel, timeout_s, initial=initial, on_result=keep)
    for name, o in failed.items():
        if o["type"] != "result":
            outcomes[name] = o
            if name in second:  # the process that builds both models ended: neither has a result
                outcomes[second[name]] = o
    return {name: outcomes[trained_as[name]] for name in plan}
