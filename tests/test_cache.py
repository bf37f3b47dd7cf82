"""The run cache: a damaged entry is a miss that is retrained and replaced; disk and memory stay bounded."""

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from core.batch import ARRAYS, RunCache, _summary_digest, run_keys
from core.config import DataConfig
from core.data import load
from core.factors import make_pair, parse_run
from core.pair import cached_result, pair_plan, run_pair
from helpers import same_arrays

MOONS = DataConfig(dataset="moons", n_samples=200)
PAIR = make_pair(MOONS, parse_run({"training": {"epochs": 2}}), {"optimizer.epsilon": 1e-8})


@pytest.fixture(scope="module")
def trained(standin_pool, tmp_path_factory):
    """The pair trained once (framework-free workers: the cache is what is tested) into a cache folder; each
    test damages its own copy."""
    root = tmp_path_factory.mktemp("trained")
    result = run_pair(PAIR, standin_pool, cache=RunCache(root))
    keys = run_keys(pair_plan(PAIR), load(MOONS).fingerprint())
    return root, result, keys


@pytest.fixture(scope="module")
def recorded(trained):
    """A whole outcome (A's) and its entry folder, for the tests of the cache alone."""
    root, _, keys = trained
    outcome = RunCache(root).get(keys["a"])
    assert outcome is not None and outcome["weights"]
    return keys["a"], root / "runs" / keys["a"], outcome


def _same_outcome_arrays(got: dict, original: dict) -> bool:
    return (got["weights"].keys() == original["weights"].keys()
            and all(got["weights"][k].tobytes() == v.tobytes() for k, v in original["weights"].items())
            and all((got[k] is None) == (original[k] is None)
                    and (got[k] is None or got[k].tobytes() == original[k].tobytes()) for k in ARRAYS))


def _rewrite_npz(entry: Path, keep) -> None:
    with np.load(entry / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if keep(k)}
    np.savez(entry / "arrays.npz", **arrays)


def _truncate(entry: Path) -> None:
    data = (entry / "arrays.npz").read_bytes()
    (entry / "arrays.npz").write_bytes(data[:len(data) // 2])


def _flip_byte(entry: Path) -> None:
    data = bytearray((entry / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one stored number
    (entry / "arrays.npz").write_bytes(bytes(data))


DAMAGE = {
    "truncated npz": _truncate,
    "one flipped byte in the npz": _flip_byte,
    "empty npz": lambda entry: np.savez(entry / "arrays.npz"),
    "run.json is []": lambda entry: (entry / "run.json").write_text("[]"),
    "run.json is {}": lambda entry: (entry / "run.json").write_text("{}"),
    "npz without weights": lambda entry: _rewrite_npz(entry, lambda k: not k.startswith("weights/")),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_entry_is_retrained_bitwise_and_replaced(standin_pool, trained, tmp_path, damage):
    pool = standin_pool
    root, first, keys = trained
    shutil.copytree(root, tmp_path / "cache")
    DAMAGE[damage](tmp_path / "cache" / "runs" / keys["a"])
    # Opening the link (only cached runs): nothing to show, no error.
    shutil.copytree(tmp_path / "cache", tmp_path / "link")
    assert cached_result(PAIR, RunCache(tmp_path / "link")) is None

    log = []
    again = run_pair(PAIR, pool, on_event=lambda name, event: log.append((name, event["type"])),
                     cache=RunCache(tmp_path / "cache"))
    assert ("a", "done") in log and ("a", "cached") not in log  # A retrained ...
    assert ("b", "cached") in log and ("b", "done") not in log  # ... B, intact, served
    assert again.complete and not again.cached
    assert same_arrays(first, again)
    fresh = RunCache(tmp_path / "cache")  # the entry on disk is whole again
    assert fresh.has(keys["a"])
    reloaded = fresh.get(keys["a"])
    assert reloaded is not None and reloaded["cached"]
    assert all(reloaded["weights"][k].tobytes() == v.tobytes() for k, v in first.weights("a").items())
    assert same_arrays(first, cached_result(PAIR, RunCache(tmp_path / "cache")))


# --- the loader under random damage (no training) ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
files = st.sampled_from(["run.json", "arrays.npz"])
fields = st.sampled_from(["type", "history", "recorded_epochs", "diverged_epoch", "effective", "versions", "timings", "n_train_rows",
                          "peak_rss_mb", "entry"])
DAMAGES = {
    "none": st.tuples(st.just("none")),
    "truncate": st.tuples(st.just("truncate"), files, st.integers(min_value=0)),
    "flip": st.tuples(st.just("flip"), files, st.integers(min_value=0), st.integers(1, 255)),
    "bytes": st.tuples(st.just("bytes"), files, st.binary(max_size=64)),
    "json": st.tuples(st.just("json"), json_values),
    "delete": st.tuples(st.just("delete"), st.sampled_from(["run.json", "arrays.npz", "folder", "both files"])),
    # One field of run.json changed or dropped, its digest left as it was, or forged to match.
    "field": st.tuples(st.just("field"), fields, st.none() | json_values, st.booleans()),
    # The npz without some of its arrays, its digest forged to match.
    "arrays": st.tuples(st.just("arrays"), st.lists(st.integers(0, 20), max_size=4)),
}
damages = st.sampled_from(sorted(DAMAGES)).flatmap(DAMAGES.get)


def _apply(entry: Path, damage: tuple) -> None:
    kind, *args = damage
    if kind == "truncate":
        name, offset = args
        data = (entry / name).read_bytes()
        (entry / name).write_bytes(data[:offset % (len(data) + 1)])
    elif kind == "flip":
        name, at, mask = args
        data = bytearray((entry / name).read_bytes())
        data[at % len(data)] ^= mask
        (entry / name).write_bytes(bytes(data))
    elif kind == "bytes":
        name, data = args
        (entry / name).write_bytes(data)
    elif kind == "json":
        (entry / "run.json").write_text(json.dumps(args[0]))
    elif kind == "delete":
        for name in {"folder": [], "both files": ["run.json", "arrays.npz"]}.get(args[0], [args[0]]):
            (entry / name).unlink()
        if args[0] == "folder":
            shutil.rmtree(entry)
    elif kind == "field":
        field, value, forge = args
        summary = json.loads((entry / "run.json").read_text())
        if value is None:
            summary.pop(field, None)
        else:
            summary[field] = value
        if forge and isinstance(summary.get("entry"), dict):
            rest = {k: v for k, v in summary.items() if k != "entry"}
            summary["entry"]["summary_sha256"] = _summary_digest(json.loads(json.dumps(rest)))
        (entry / "run.json").write_text(json.dumps(summary))
    elif kind == "arrays":
        with np.load(entry / "arrays.npz") as npz:
            names = sorted(npz.files)
        dropped = {names[i % len(names)] for i in args[0]}
        _rewrite_npz(entry, lambda k: k not in dropped)
        summary = json.loads((entry / "run.json").read_text())
        summary["entry"]["arrays_sha256"] = hashlib.sha256((entry / "arrays.npz").read_bytes()).hexdigest()
        (entry / "run.json").write_text(json.dumps(summary))


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=damages)
@example(damage=("none",))
@example(damage=("truncate", "arrays.npz", 0))  # an empty file
@example(damage=("arrays", [0, 1, 2, 3]))  # forged: nothing but the predictions
@example(damage=("bytes", "run.json", b"\xff\xfe{"))  # not UTF-8
@example(damage=("field", "history", [], True))  # forged, and still a valid result
@example(damage=("field", "n_train_rows", "160", True))  # forged, a field of the wrong type
def test_the_loader_never_raises_and_serves_only_the_original(recorded, damage):
    key, original_entry, original = recorded
    with tempfile.TemporaryDirectory() as tmp:
        roots = [Path(tmp, "has"), Path(tmp, "get")]
        for root in roots:  # the same damage in two caches: has() on one, get() on the other
            shutil.copytree(original_entry, root / "runs" / key)
            _apply(root / "runs" / key, damage)
        has = RunCache(roots[0]).has(key)
        got = RunCache(roots[1]).get(key)
        assert has == (got is not None)
        event(f"{damage[0]}: {'served' if got is not None else 'miss'}")
        if damage == ("none",):
            assert got is not None
        if got is None:  # a damaged entry is removed, so that the retrained run can take its place
            assert not (roots[1] / "runs" / key).exists()
        elif damage[0] == "arrays":  # forged to pass the digest: still what a result needs, each array the original
            assert got["weights"] and got["predictions"].tobytes() == original["predictions"].tobytes()
            assert all(v.tobytes() == original["weights"][k].tobytes() for k, v in got["weights"].items())
        else:  # whatever else was changed or forged, only the original arrays are ever served
            assert _same_outcome_arrays(got, original)
            assert RunCache(roots[1]).has(key)


def test_put_replaces_a_damaged_folder_and_keeps_a_valid_one(recorded, tmp_path):
    key, _, outcome = recorded
    entry = tmp_path / "runs" / key
    entry.mkdir(parents=True)
    (entry / "run.json").write_text("{}")
    (entry / "arrays.npz").write_bytes(b"")
    RunCache(tmp_path).put(key, outcome)
    reloaded = RunCache(tmp_path).get(key)
    assert reloaded is not None and _same_outcome_arrays(reloaded, outcome)
    inode = entry.stat().st_ino
    RunCache(tmp_path).put(key, outcome)  # another thread saved it first: that one stays
    assert entry.stat().st_ino == inode
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [key]  # no write left behind


def test_has_reads_an_entry_once_and_sees_it_change(recorded, tmp_path, monkeypatch):
    key, original_entry, _ = recorded
    shutil.copytree(original_entry, tmp_path / "runs" / key)
    cache = RunCache(tmp_path)
    assert cache.has(key)
    import core.batch

    monkeypatch.setattr(core.batch, "_load", lambda *a, **k: pytest.fail("read an unchanged entry again"))
    assert cache.has(key)
    monkeypatch.undo()
    _truncate(tmp_path / "runs" / key)  # size changes: read again, found damaged
    assert not cache.has(key) and cache.get(key) is None


# --- size limits ---

def _outcome(values: int, seed: int = 0) -> dict:
    """A valid outcome whose arrays hold `values` float64 numbers (8 bytes each)."""
    rng = np.random.default_rng(seed)
    return {"type": "result", "history": [{"epoch": 1, "loss": float("nan")}], "recorded_epochs": [0, 1],
            "diverged_epoch": 1, "effective": {}, "versions": {}, "timings": {}, "n_train_rows": 10, "peak_rss_mb": 1.0,
            "train_inputs_digest": "0" * 64, "weights": {"dense/kernel": rng.random((2, values // 2 - 15))},
            "predictions": rng.random((2, 5, 1)), "grid_predictions": None, "test_inputs": rng.random((5, 2))}


def _entries(root: Path) -> set[str]:
    return {p.name for p in (root / "runs").iterdir()}


@pytest.mark.parametrize("used_first", [False, True])
def test_the_disk_limit_evicts_the_least_recently_used(tmp_path, used_first):
    cache = RunCache(tmp_path, max_mb=2)  # room for two entries of ~0.8 MB, not three
    now = time.time()
    for age, key in [(30, "first"), (20, "second")]:
        cache.put(key, _outcome(100_000))
        os.utime(tmp_path / "runs" / key, (now - age, now - age))
    assert _entries(tmp_path) == {"first", "second"}
    if used_first:
        assert RunCache(tmp_path).get("first") is not None  # a use: now the most recent
    cache.put("third", _outcome(100_000))
    assert _entries(tmp_path) == ({"first", "third"} if used_first else {"second", "third"})
    assert RunCache(tmp_path).get("third") is not None


def test_the_entry_just_written_stays_even_over_the_limit(tmp_path):
    cache = RunCache(tmp_path, max_mb=0.5)
    cache.put("big", _outcome(100_000, seed=1))
    assert _entries(tmp_path) == {"big"}
    cache.put("next", _outcome(100_000, seed=2))
    assert _entries(tmp_path) == {"next"}
    assert _same_outcome_arrays(RunCache(tmp_path).get("next"), _outcome(100_000, seed=2))


def test_the_limit_comes_from_the_environment_and_the_folder_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE_MB", "3")
    assert RunCache(tmp_path).max_bytes == 3 * 2**20
    monkeypatch.delenv("DIVERGENCE_LAB_CACHE_MB")
    assert RunCache(tmp_path).max_bytes == 2048 * 2**20
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE_MB", "lots")
    with pytest.warns(UserWarning, match="DIVERGENCE_LAB_CACHE_MB"):
        assert RunCache(tmp_path).max_bytes == 2048 * 2**20
    monkeypatch.delenv("DIVERGENCE_LAB_CACHE_MB")  # (a cache made with "lots" would warn again)
    RunCache(tmp_path).put("k", _outcome(1000))
    assert stat.S_IMODE((tmp_path / "runs").stat().st_mode) == 0o700


def test_the_memory_tier_is_bounded_by_bytes(tmp_path):
    cache = RunCache(tmp_path, memory_mb=2, max_mb=100)
    outcomes = {f"k{i}": _outcome(100_000, seed=i) for i in range(4)}  # 0.8 MB of arrays each
    for key, outcome in outcomes.items():
        cache.put(key, outcome)
        assert cache.memory_used <= 2 * 2**20
    assert list(cache.memory) == ["k2", "k3"]
    assert cache.memory_used == sum(o["weights"]["dense/kernel"].nbytes + o["predictions"].nbytes
                                    + o["test_inputs"].nbytes for o in (outcomes["k2"], outcomes["k3"]))
    assert cache.get("k0")["weights"]["dense/kernel"] is not outcomes["k0"]["weights"]["dense/kernel"]  # from disk
    assert list(cache.memory) == ["k3", "k0"]
    big = _outcome(400_000, seed=9)  # 3.2 MB: served from disk, never held in memory
    cache.put("big", big)
    assert "big" not in cache.memory and list(cache.memory) == ["k3", "k0"]
    assert _same_outcome_arrays(cache.get("big"), big) and "big" not in cache.memory
    assert all(_same_outcome_arrays(cache.get(k), o) for k, o in outcomes.items())


def test_threads_saving_and_reading_one_key_leave_one_valid_entry(tmp_path):
    outcome = _outcome(20_000, seed=3)
    entry = tmp_path / "runs" / "k"
    entry.mkdir(parents=True)
    (entry / "run.json").write_text("[]")  # damaged, in the way of every save
    errors, served = [], []

    def work(i):
        try:
            cache = RunCache(tmp_path)
            if i % 2:
                cache.put("k", outcome)
            else:
                got = cache.get("k")
                served.append(got is None or _same_outcome_arrays(got, outcome))
        except Exception as e:  # noqa: BLE001 - any exception fails the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and all(served)
    assert _entries(tmp_path) == {"k"}
    assert _same_outcome_arrays(RunCache(tmp_path).get("k"), outcome)


def test_an_empty_cache_says_so_and_a_saved_run_ends_that(tmp_path):
    assert RunCache(tmp_path).empty()  # no folder yet
    cache = RunCache(tmp_path)
    cache.put("k", _outcome(1_000))
    assert not cache.empty() and not RunCache(tmp_path).empty()  # in memory, and on disk for a new cache object
