"""Folders this app writes to (the run cache, uploads), kept under a size limit.

Each entry is a file or a folder directly inside the managed folder. Using an entry
touches it (its mtime is its last use); when the folder outgrows its limit the least
recently used entries go first. Nothing here knows what an entry holds.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from pathlib import Path


def cache_root() -> Path:
    """Where this app keeps what it writes (runs, uploads): $DIVERGENCE_LAB_CACHE or ~/.cache/divergence-lab."""
    return Path(os.environ.get("DIVERGENCE_LAB_CACHE") or Path.home() / ".cache" / "divergence-lab")


def runs_folder(root: str | Path | None = None) -> Path:
    """Where the run cache (core.batch.RunCache) keeps its entries: under `root`, else cache_root()."""
    return Path(root or cache_root()) / "runs"


def nothing_saved(folder: Path) -> bool:
    """The folder holds no entry (or does not exist)."""
    try:
        return not any(folder.iterdir())
    except OSError:
        return True


def limit_bytes(env: str, default_mb: float) -> int:
    """A folder's size limit: megabytes from the environment variable `env`, else `default_mb`."""
    value = os.environ.get(env, "").strip()
    try:
        mb = float(value) if value else default_mb
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb >= 0):
        warnings.warn(f"{env}={value!r} is not a size in MB; keeping {default_mb:g} MB")
        mb = default_mb
    return int(mb * 2**20)


def private_dir(path: Path) -> Path:
    """The folder, created readable by this user only (uploads and results are nobody else's business)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_atomically(path: Path, content: bytes) -> None:
    """Write `path` (0600) through a hidden partial file renamed into place: a reader never sees half a file,
    and eviction (evict_least_recent) skips the partial one."""
    partial = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def touch(entry: Path) -> None:
    """Mark an entry as used now."""
    try:
        os.utime(entry)
    except OSError:
        pass


def size_bytes(entry: Path) -> int:
    if entry.is_file():
        return entry.stat().st_size
    return sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())


def evict_least_recent(directory: Path, max_bytes: int, keep: tuple[Path, ...] = ()) -> list[Path]:
    """Remove the least recently used entries until the folder holds at most `max_bytes`; returns what went.

    Entries in `keep` (e.g. the one just written) and hidden ones (writes in progress) stay.
    """
    try:
        entries = [e for e in directory.iterdir() if not e.name.startswith(".")]
    except OSError:
        return []
    sized = []
    for entry in entries:
        try:
            sized.append((entry.stat().st_mtime, size_bytes(entry), entry))
        except OSError:  # removed meanwhile by another thread or process
            continue
    total = sum(size for _, size, _ in sized)
    removed = []
    for _, size, entry in sorted(sized, key=lambda t: t[0]):
        if total <= max_bytes:
            break
        if entry in keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        total -= size
        removed.append(entry)
    return removed
