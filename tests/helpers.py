"""Checks shared by the training tests."""

import re
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


def unescaped(markdown: str) -> str:
    """A message as the reader sees it: ui.text.plain backslash-escapes punctuation and puts
    linkable words (URLs, e-mail addresses) into code spans."""
    out, i = [], 0
    while i < len(markdown):
        if markdown[i] == "\\" and i + 1 < len(markdown):
            out.append(markdown[i + 1])
            i += 2
        elif markdown[i] == "`":
            fence = re.match(r"`+", markdown[i:]).group()
            end = markdown.index(fence, i + len(fence))
            code = markdown[i + len(fence):end]
            out.append(code[1:-1] if code.startswith(" ") and code.endswith(" ") and code.strip() else code)
            i = end + len(fence)
        else:
            out.append(markdown[i])
            i += 1
    return "".join(out)
