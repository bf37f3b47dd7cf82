"""Checks shared by the training tests."""

import os
import re
import subprocess
import sys
import textwrap
import time

import psutil


def same_arrays(r1, r2) -> bool:
    """Two pair results hold the same arrays, bitwise (core.pair.PairResult.same_bits)."""
    return r1.same_bits(r2)


def process_ends(pid: int, timeout: float = 10.0) -> bool:
    """The process is gone within `timeout` (the pool kills at once and reaps on a thread)."""
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not psutil.pid_exists(pid)


def pages_init_as_on_a_server():
    """A PagesManager.__init__ that remembers, as the real server does, that st.navigation switched Streamlit's
    legacy pages/ folder mode off (AppTest forgets it between runs; DESIGN.md)."""
    from streamlit.runtime import pages_manager

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    return init


def user_env(**variables: str) -> dict[str, str]:
    """A user's environment: without anything that points at this project or sets a framework up for it, plus
    `variables`."""
    drop = {"PYTHONPATH", "TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **variables}


class FreshPython:
    """A plain script (a file, or source code) in a fresh interpreter, started at once and read later: a
    test starts it before its own runs, or starts several together (each is one process on one core)."""

    def __init__(self, script: str, *args: str, env: dict | None = None):
        command = [script] if script.endswith(".py") else ["-c", textwrap.dedent(script)]
        self.proc = subprocess.Popen([sys.executable, *command, *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def output(self, timeout: float = 300) -> str:
        """Its standard output, once it has ended; the test fails with its stderr if it failed."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            self.stop()
        assert self.proc.returncode == 0, err[-2000:]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


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


def open_sections(at):
    """Open every sidebar section of an AppTest, as a person does before typing in one: on the first page a
    closed section draws no inputs (ui.sidebar._section)."""
    from ui.sidebar import SECTIONS

    for key in SECTIONS:
        at.session_state[key] = True
    return at
