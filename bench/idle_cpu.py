"""The idle server's CPU with a virtualenv in the app folder: no file watcher (the app's config) vs Streamlit's.

Copies the checkout (the files git tracks, and new ones it does not ignore) into a temp folder,
creates a real virtualenv there (`python -m venv .venv`, the layout .gitignore expects) and puts
copies of a few big installed packages into its site-packages (hard links where the file system
allows), as `pip install -r requirements.txt` would. Then starts the server in that folder twice,
one after the other: with the project's `.streamlit/config.toml` (no file watcher) and with
`--server.fileWatcherType auto`. Each time it opens the first page in headless chromium (the
file watcher starts with a session), waits until the warm workers are idle, and measures the CPU
time of the server and its workers over --idle-s seconds with the page open and nothing happening.

  none_cpu / auto_cpu      CPU seconds per second of idle (1.0 = one core busy), server + workers
  none_server_cpu / ...    the Streamlit process alone
  *_inotify_overflows      "Inotify queue overflowed" lines in the server's log
  auto_over_none           auto_cpu / none_cpu

    python bench/idle_cpu.py [--idle-s 20] [--packages tensorflow,streamlit,pandas]

Needs Debian's chromium and playwright (requirements-dev.txt). Cleans up its temp folder and
servers. Figures come last, one per line as `name: value`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from app_speed import FLAGS, _port, new_page, open_first_page, wait_workers_warm  # noqa: E402
from pair_speed import print_figures  # noqa: E402

OVERFLOW = "Inotify queue overflowed"


def copy_checkout(dest: Path) -> int:
    """The working tree's files as a fresh clone plus local changes would hold them; their count."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    count = 0
    for name in filter(None, dict.fromkeys(listed)):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
            count += 1
    return count


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system
        shutil.copy2(source, dest)


def make_venv(app: Path, packages: list[str]) -> dict:
    """`python -m venv .venv` in the app folder, plus copies of `packages` in its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", str(app / ".venv")], check=True, capture_output=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(app / ".venv"), "platbase": str(app / ".venv")}))
    for name in packages:
        spec = importlib.util.find_spec(name)  # found without importing it
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"--packages: {name} is not an installed package")
        source = Path(list(spec.submodule_search_locations)[0])
        shutil.copytree(source, purelib / source.name, copy_function=_link_or_copy, symlinks=True)
    files = dirs = 0
    for _, subdirs, names in os.walk(app / ".venv"):
        dirs += len(subdirs)
        files += len(names)
    return {"venv_files": files, "venv_dirs": dirs}


def tree_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of a process and each of its descendants, by pid."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    seconds = {}
    for p in procs:
        try:
            t = p.cpu_times()
            seconds[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return seconds


def stop(server: subprocess.Popen) -> None:
    """End the server and every process it started (by pid: only this benchmark's)."""
    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=10)


def measure(app: Path, watcher: str | None, env: dict, idle_s: float, browser) -> dict:
    """Start the server in `app` (the project's config, or --server.fileWatcherType `watcher`), open the
    first page, wait for idle workers, then measure the idle CPU of the server and of its process tree."""
    port = _port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]
    if watcher:
        command += ["--server.fileWatcherType", watcher]
    log = app.parent / f"server-{watcher or 'config'}.log"
    with open(log, "wb") as out:
        started = time.time()  # (open_first_page reads the page's clock)
        server = subprocess.Popen(command, cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT)
    page = new_page(browser)
    try:
        first_page_s = open_first_page(page, f"http://127.0.0.1:{port}", started)
        wait_workers_warm(server.pid)
        time.sleep(2.0)  # the first page's after-work (chart modules loading in the background) ends
        before, t0 = tree_cpu(server.pid), time.perf_counter()
        time.sleep(idle_s)
        after, wall = tree_cpu(server.pid), time.perf_counter() - t0
    finally:
        page.close()
        stop(server)
    tree = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    return {"cpu": tree / wall, "server_cpu": (after.get(server.pid, 0.0) - before.get(server.pid, 0.0)) / wall,
            "processes": len(after), "first_page_s": first_page_s,
            "inotify_overflows": log.read_text(errors="replace").count(OVERFLOW)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-s", type=float, default=20.0, help="seconds of idle measured per server")
    parser.add_argument("--packages", default="tensorflow,streamlit,pandas",
                        help="installed packages copied into the virtualenv (comma-separated)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="idle-cpu-"))
    try:
        app = work / "app"
        copied = copy_checkout(app)
        venv = make_venv(app, [p for p in args.packages.split(",") if p])
        env = {**os.environ, "DIVERGENCE_LAB_CACHE": str(work / "cache")}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            try:
                none = measure(app, None, env, args.idle_s, browser)
                auto = measure(app, "auto", env, args.idle_s, browser)
            finally:
                browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {"cpus": os.cpu_count(), "checkout_files": copied, **venv, "idle_s": args.idle_s,
               **{f"none_{k}": v for k, v in none.items()}, **{f"auto_{k}": v for k, v in auto.items()},
               "auto_over_none": auto["cpu"] / none["cpu"] if none["cpu"] else float("inf")}
    print_figures(figures)


if __name__ == "__main__":
    main()
