"""The app in a real browser, side by side with the naive script, in one run.

  first_page_s      server start -> first page rendered (script idle, Run button drawn, as the page
                    itself timestamps it), with the browser already open and sent to the page as soon as
                    the server answers its health check;
                    minimal_streamlit_first_page_s is the same for a three-line Streamlit app, the floor
                    on this machine; widgets_first_page_s is the same for a ten-line app with the kinds
                    of widgets the first page's sidebar uses (the browser fetches each kind's code when it
                    first draws one; first_page_over_widgets: what the app adds to that); medians of --first-pages
                    fresh servers of each, alternating
  first_view_s      the same first page, opened once the server is up and idle: the page load, the script's
                    first run and the browser's drawing, without the server's start (steadier across runs);
                    minimal_first_view_s and widgets_first_view_s likewise. The app's modules are compiled
                    before (bytecode in core/ and ui/, as a deployed app has it from its first start)
  run_to_charts_s   press Run (default scenario, warm workers, nothing cached) -> every
                    chart of the Overview drawn, both as the page itself timestamps them (the
                    click as the page receives it; a MutationObserver: the verdict's metric, the
                    glance chart, every Vega chart drawn and the script idle); median of --repeat
                    (each with another seed, in a page just loaded, so the cache cannot answer).
                    run_to_charts_playwright_s is from Playwright's click call to its wait noticing
                    the end (Playwright first finds the button and checks it can be clicked)
  workers_s         of that, the workers' part: from handing the first run (A, B and the runs
                    that diagnose why they differ) its job to the last result (the runs' own
                    timings, read from the run cache); the rest (app_s) is the server and the browser
  app_again_s       app_s of the Runs that follow in the page of the last one ("Train fresh" on: the same
                    work), once the browser has the code of every element the Overview draws (the first
                    Run of a page load fetches the code of its metrics, tables and download buttons);
                    median of --repeat
  naive_total_s     the naive script of bench/pair_speed.py (import TF, fit twice)
  streamlit_rss_mb  resident memory of the Streamlit process after the Runs in fresh pages (workers are
                    separate)

    python bench/app_speed.py [--repeat 3] [--first-pages 3]

Needs Debian's chromium and playwright (requirements-dev.txt). Figures come last, one
per line as `name: value`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pair_speed import naive, print_figures  # noqa: E402

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# The page timestamps itself (Date.now(), seconds), as soon as it is drawn, rather than Playwright noticing it:
# Playwright's waits poll, and each poll queries the whole page, longer the more the page holds.
#   window.firstPageDrawnAt: the first time the Run button is drawn and the script has run and is idle.
#   window.clickedAt: the last click, as the page received it.
#   window.overviewDrawnAt: the first time since `scriptRan` was reset (a Run pressed) that the Overview shows the
#   verdict's metric and the glance chart, every Vega chart has drawn, and the script is idle; a second Run's page
#   shows the last Overview until the script has run.
# The checks read textContent, not innerText, which would make the browser lay out the page at every change.
DRAWN = """
window.firstPageDrawnAt = null;
window.overviewDrawnAt = null;
window.scriptRan = false;
window.clickedAt = null;
document.addEventListener('click', () => { window.clickedAt = Date.now() / 1000; }, true);
const check = () => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return;
  const state = app.getAttribute('data-test-script-state');
  if (state === 'running') window.scriptRan = true;
  if (!window.scriptRan || state !== 'notRunning') return;
  const now = Date.now() / 1000;
  const runButton = () => [...document.querySelectorAll('button')].some(b => b.textContent.trim() === 'Run');
  if (window.firstPageDrawnAt === null && runButton()) window.firstPageDrawnAt = now;
  if (window.overviewDrawnAt === null) {
    const text = document.body.textContent;
    const charts = [...document.querySelectorAll('.vega-embed')];
    if (text.includes('Largest prediction gap') && text.includes('Divergence at a glance') && charts.length > 0 &&
        charts.every(c => c.querySelector('canvas, svg'))) window.overviewDrawnAt = now;
  }
};
new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MINIMAL_APP = 'import streamlit as st\nst.title("Divergence Lab")\nst.sidebar.button("Run")\n'
WIDGETS_APP = """import streamlit as st
st.title("Divergence Lab")
with st.sidebar:
    st.selectbox("Scenario", ["a", "b"])
    st.button("Run")
    st.toggle("Train fresh")
    with st.expander("Data"):
        st.number_input("Epochs", value=20)
        st.text_input("Target column")
    st.multiselect("B differs in", ["x", "y"])
"""


def start_server(app: Path, port: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def new_page(browser):
    """A page of the size the benchmarks use, that timestamps its own drawing (DRAWN)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.add_init_script(DRAWN)
    return page


def wait_listening(url: str) -> None:
    """Until the Streamlit server at `url` answers its health check (polled every 20 ms)."""
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return
        except OSError:  # not listening yet
            time.sleep(0.02)


def open_first_page(page, url: str, started: float) -> float:
    """Seconds from `started` (time.time()) until the page drew itself, the Run button included."""
    # The browser goes to the page once the server answers: trying the page itself until it loads put an error page
    # and a retry between the server's start and the navigation (0.2-1.1 s here, measured), the same for every app.
    wait_listening(url)
    page.goto(url)
    # (only the page's own flag is polled: a role query of the whole page at each poll would compete with the
    # drawing it measures)
    page.wait_for_function("() => window.firstPageDrawnAt !== null", timeout=60_000)
    return page.evaluate("window.firstPageDrawnAt") - started


def first_page_seconds(page, app: Path, env: dict) -> float:
    """Server launch -> first page drawn, on a fresh server of `app`; the server and its workers end after."""
    port = _port()
    started = time.time()  # the page's Date.now() reads the same clock
    server = start_server(app, port, env)
    try:
        return open_first_page(page, f"http://127.0.0.1:{port}", started)
    finally:
        stop_server(server)


def first_view_seconds(page, app: Path, env: dict) -> float:
    """Page load -> first page drawn, on a fresh server of `app` that is up and idle; the server ends after."""
    port = _port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(app, port, env)
    try:
        wait_listening(url)
        time.sleep(1.5)  # the server's start-up work done
        return open_first_page(page, url, time.time())
    finally:
        stop_server(server)


def stop_server(server: subprocess.Popen) -> None:
    """The server and its workers ended, so that none of them takes CPU from the next measurement."""
    children = psutil.Process(server.pid).children(recursive=True)
    server.terminate()
    server.wait(timeout=30)
    psutil.wait_procs(children, timeout=30)


def workers_seconds(runs: Path, since: float) -> float:
    """The span of the runs cached since `since` (A, B and the diagnosis's runs; a fresh training replaces a
    run's entry): from the first one handed to a worker to the last result."""
    new = [d for d in runs.iterdir() if not d.name.startswith(".") and (d / "run.json").stat().st_mtime >= since]
    timings = [json.loads((d / "run.json").read_text())["timings"] for d in new]
    return max(t["ended_at"] for t in timings) - min(t["ended_at"] - t["total_s"] for t in timings)


def timed_run(page, runs: Path) -> tuple[float, float, float]:
    """Press Run: seconds from the click to the page drawing every chart of the Overview, from Playwright's click
    call to its wait noticing that, and the workers' span."""
    page.evaluate("window.overviewDrawnAt = null; window.scriptRan = false; window.clickedAt = null")
    called = time.time()  # the page's Date.now() reads the same clock
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => window.overviewDrawnAt !== null", timeout=300_000)
    noticed = time.time() - called
    drawn_at, clicked_at = page.evaluate("[window.overviewDrawnAt, window.clickedAt]")
    return drawn_at - clicked_at, noticed, workers_seconds(runs, called)


def wait_workers_warm(server_pid: int, timeout: float = 120.0) -> None:
    """Until the server's worker processes exist and sit idle (TensorFlow imported, waiting for a job)."""
    server = psutil.Process(server_pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = server.children(recursive=True)
        before = sum(sum(w.cpu_times()[:2]) for w in workers)
        time.sleep(1.0)
        try:
            after = sum(sum(w.cpu_times()[:2]) for w in workers)
        except psutil.NoSuchProcess:
            continue
        if workers and after - before < 0.05:
            return
    raise TimeoutError("the workers did not become idle")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="runs to the Overview's charts")
    parser.add_argument("--first-pages", type=int, default=3, help="first pages of each app, on fresh servers")
    args = parser.parse_args()
    env = {**os.environ, "DIVERGENCE_LAB_CACHE": tempfile.mkdtemp(prefix="bench-cache-")}
    # The servers start as a deployed app's do, its modules' bytecode kept from an earlier start (as the
    # installed libraries' is from their install): with PYTHONDONTWRITEBYTECODE set, as on some machines, every
    # start would compile the app's own modules again, work that a minimal app does not have.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "core", "ui"], cwd=ROOT, env=env, check=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = new_page(browser)

        folder = Path(tempfile.mkdtemp(prefix="bench-minimal-"))
        minimal, widgets = folder / "app.py", folder / "widgets.py"
        minimal.write_text(MINIMAL_APP)
        widgets.write_text(WIDGETS_APP)
        apps = {"minimal": minimal, "widgets": widgets, "app": ROOT / "app.py"}
        pages = {(measure, name): [] for measure in (first_page_seconds, first_view_seconds) for name in apps}
        for _ in range(args.first_pages):  # alternating, each on a fresh server
            for measure, name in pages:
                pages[measure, name].append(measure(page, apps[name], env))
        minimal_pages, widgets_pages, first_pages = (pages[first_page_seconds, name] for name in apps)
        views = {name: statistics.median(pages[first_view_seconds, name]) for name in apps}

        port = _port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(ROOT / "app.py", port, env)
        try:
            open_first_page(page, url, time.time())
            times, seen_by_playwright, workers, again = [], [], [], []
            runs = Path(env["DIVERGENCE_LAB_CACHE"]) / "runs"
            for seed in range(1, args.repeat + 1):
                page.goto(f"{url}/?b.optimizer.epsilon=1e-08&init=a&a.seeding.seed={seed}")
                page.wait_for_selector(IDLE)
                wait_workers_warm(server.pid)
                drawn, noticed, span = timed_run(page, runs)
                times.append(drawn)
                seen_by_playwright.append(noticed)
                workers.append(span)
            rss = psutil.Process(server.pid).memory_info().rss / 2**20
            # In the page of the last Run: the same pair again, trained fresh each time.
            page.get_by_test_id("stSidebar").get_by_text("Train fresh", exact=True).click()
            for _ in range(args.repeat):
                wait_workers_warm(server.pid)  # (and the toggle's rerun done)
                drawn, _, span = timed_run(page, runs)
                again.append((drawn, span))
        finally:
            stop_server(server)
        browser.close()
    naive_total, naive_fit = naive(20)
    run_to_charts = statistics.median(times)
    figures = {
        "cpus": os.cpu_count(),
        "minimal_streamlit_first_page_s": statistics.median(minimal_pages),
        "widgets_first_page_s": statistics.median(widgets_pages),
        "first_page_s": statistics.median(first_pages),
        "minimal_streamlit_first_page_all_s": " ".join(f"{t:.3f}" for t in minimal_pages),
        "first_page_all_s": " ".join(f"{t:.3f}" for t in first_pages),
        "run_to_charts_s": run_to_charts,
        "run_to_charts_all_s": " ".join(f"{t:.3f}" for t in times),
        "run_to_charts_playwright_s": statistics.median(seen_by_playwright),
        "workers_s": statistics.median(workers),
        "app_s": statistics.median(t - w for t, w in zip(times, workers)),
        "app_again_s": statistics.median(t - w for t, w in again),
        "app_again_all_s": " ".join(f"{t - w:.3f}" for t, w in again),
        "naive_total_s": naive_total,
        "naive_fit_only_s": naive_fit,
        "streamlit_rss_mb": rss,
        "minimal_first_view_s": views["minimal"],
        "widgets_first_view_s": views["widgets"],
        "first_view_s": views["app"],
        "first_page_over_minimal": statistics.median(first_pages) / statistics.median(minimal_pages),
        "widgets_over_minimal": statistics.median(widgets_pages) / statistics.median(minimal_pages),
        "first_page_over_widgets": statistics.median(first_pages) / statistics.median(widgets_pages),
        "first_view_over_minimal": views["app"] / views["minimal"],
        "widgets_view_over_minimal": views["widgets"] / views["minimal"],
        "naive_over_run_to_charts": naive_total / run_to_charts,
    }
    print_figures(figures)


if __name__ == "__main__":
    main()
