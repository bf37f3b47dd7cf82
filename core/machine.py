"""The machine's memory, as the processes that train see it: a container's cgroup limit, else physical memory.

Read by the pool (how many workers fit) and the budget (how much one worker may hold); no framework, no pool here.
"""

from __future__ import annotations

import os
from pathlib import Path

PARENT_RESERVE_MB = 300  # the calling process (Streamlit) keeps this much

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_limit_files(proc_cgroup: str) -> list[Path]:
    """Limit files of this process's memory cgroup and of every cgroup above it (v2 and v1)."""
    files = []
    for line in proc_cgroup.splitlines():
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and controllers == "":
            base, name = CGROUP_ROOT, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = CGROUP_ROOT / "memory", "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        files += [base.joinpath(*parts[:i], name) for i in range(len(parts), -1, -1)]
    return files


def memory_limit_mb() -> float:
    """The tightest memory limit of this process's cgroups (a container's), else physical memory."""
    try:
        files = _cgroup_limit_files(Path("/proc/self/cgroup").read_text())
    except OSError:
        files = []
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    return min(limits) / 2**20


def memory_for_workers_mb() -> float:
    """What the workers may hold together: the memory limit less the calling process's reserve."""
    return memory_limit_mb() - PARENT_RESERVE_MB
