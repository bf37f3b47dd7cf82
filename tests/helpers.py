"""Checks shared by the training tests."""

import time

import psutil


def same_arrays(r1, r2) -> bool:
    """Two pair results hold the same arrays, bitwise."""
    return r1.arrays.keys() == r2.arrays.keys() and all(
        r1.arrays[k].tobytes() == r2.arrays[k].tobytes() for k in r1.arrays)


def process_ends(pid: int, timeout: float = 10.0) -> bool:
    """The process is gone within `timeout` (the pool kills at once and reaps on a thread)."""
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not psutil.pid_exists(pid)
