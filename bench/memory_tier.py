"""The app inside a memory-limited cgroup, as on Streamlit Community Cloud's smallest tier.

Starts the real server in a new cgroup limited to --limit-mb (690 by default; swap
limited too), drives it from a browser outside the cgroup: the default scenario,
then the Attribution page's batch. Reports the pool size the app chose, the cgroup's
peak usage, how often it hit the limit and whether anything was OOM-killed.

    sudo python bench/memory_tier.py [--limit-mb 690]

Needs root and a writable cgroup v1 memory hierarchy (/sys/fs/cgroup/memory) or
cgroup v2 (/sys/fs/cgroup with the memory controller), Debian's chromium and
playwright. Figures come last, one per line as `name: value`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from app_speed import FLAGS, IDLE, _port, new_page, open_first_page  # noqa: E402
from pair_speed import print_figures  # noqa: E402


class Cgroup:
    """A fresh memory cgroup (v1 or v2) with a hard limit."""

    def __init__(self, limit_mb: int):
        v1 = Path("/sys/fs/cgroup/memory")
        self.v1 = v1.is_dir()
        self.path = (v1 if self.v1 else Path("/sys/fs/cgroup")) / f"divergence-lab-{os.getpid()}"
        self.path.mkdir()
        limit = str(limit_mb * 2**20)
        if self.v1:
            (self.path / "memory.limit_in_bytes").write_text(limit)
            swap = self.path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(limit)
        else:
            (self.path / "memory.max").write_text(limit)
            (self.path / "memory.swap.max").write_text("0")

    def figures(self) -> dict:
        if self.v1:
            oom = dict(line.split() for line in (self.path / "memory.oom_control").read_text().splitlines())
            return {"peak_mb": int((self.path / "memory.max_usage_in_bytes").read_text()) / 2**20,
                    "limit_hits": int((self.path / "memory.failcnt").read_text()),
                    "oom_kills": int(oom.get("oom_kill", 0))}
        events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
        peak = self.path / "memory.peak"
        return {"peak_mb": int(peak.read_text()) / 2**20 if peak.exists() else float("nan"),
                "limit_hits": int(events.get("max", 0)), "oom_kills": int(events.get("oom_kill", 0))}

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:  # processes still leaving
                time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-mb", type=int, default=690)
    args = parser.parse_args()
    group = Cgroup(args.limit_mb)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="memory-tier-")) / "streamlit.log"
    env = {**os.environ, "DIVERGENCE_LAB_CACHE": tempfile.mkdtemp(prefix="memory-tier-cache-")}
    # The shell joins the cgroup, then becomes the server: the server and its workers are inside.
    command = (f"echo $$ > {group.path}/cgroup.procs && exec {sys.executable} -m streamlit run app.py "
               f"--server.port {port} --server.address 127.0.0.1 --server.headless true > {log} 2>&1")
    server = subprocess.Popen(["sh", "-c", command], cwd=ROOT, env=env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = new_page(browser)
            open_first_page(page, url, time.time())
            started = time.perf_counter()
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Largest prediction gap").wait_for(timeout=600_000)
            page.wait_for_selector(IDLE)
            pair_s = time.perf_counter() - started
            page.get_by_role("link", name="Attribution").click()
            page.get_by_role("button", name="Run the analysis").click()
            started = time.perf_counter()
            page.get_by_text("Which factor caused how much").wait_for(timeout=1_200_000)
            page.wait_for_selector(IDLE)
            analysis_s = time.perf_counter() - started
            errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
            browser.close()
        workers = subprocess.run([sys.executable, "-c", "from core.pool import default_max_workers as m; print(m())"],
                                 cwd=ROOT, capture_output=True, text=True,
                                 preexec_fn=lambda: (group.path / "cgroup.procs").write_text(str(os.getpid())))
        figures = {"limit_mb": args.limit_mb, "pool_workers_inside": workers.stdout.strip(), **group.figures(),
                   "pair_s": pair_s, "analysis_s": analysis_s, "errors_on_page": errors}
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(["pkill", "-f", "core.worker"], check=False)
        group.remove()
    print_figures(figures)


if __name__ == "__main__":
    main()
