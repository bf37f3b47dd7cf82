"""One real-browser test: the real server, Debian's Chromium driven by Playwright.

Opens the app, runs the default scenario, visits every page (starting and stopping the
analysis batch on the way), finds no exception, and saves a screenshot of each page under
test-artifacts/ (or $TEST_ARTIFACTS).
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PAGES = ["Overview", "Loss curves", "Weights", "Predictions", "Attribution", "Reproduce"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("server") / "streamlit.log", "w+")
    env = {**os.environ, "DIVERGENCE_LAB_CACHE": str(tmp_path_factory.mktemp("cache"))}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.2)
    else:
        log.seek(0)
        pytest.fail(f"the server did not come up: {log.read()[-2000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _settle(page) -> None:
    page.wait_for_timeout(300)  # let a rerun that was just triggered begin
    page.wait_for_selector(IDLE, timeout=240_000)


def test_the_first_upload_on_a_fresh_server_is_kept(server, tmp_path):
    """First in this module, so the server is fresh: its first run happens in Streamlit's pages-folder
    mode, under another script hash than later runs, and used to drop the first upload."""
    table = tmp_path / "table.csv"
    table.write_text("x1,x2,label\n" + "".join(f"{i},{(i * 7) % 5},{i % 2}\n" for i in range(60)))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/?data.dataset=csv")
        _settle(page)
        page.get_by_text("Data (shared by A and B)").click()
        run = page.get_by_test_id("stSidebar").get_by_role("button", name="Run", exact=True)
        assert run.is_disabled()  # no CSV yet
        page.locator('input[type="file"]').set_input_files(str(table))
        page.get_by_text("Target column").wait_for(timeout=60_000)
        _settle(page)
        assert page.get_by_text("table.csv").count() >= 1 and not run.is_disabled()
        browser.close()


def test_default_scenario_in_a_real_browser(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        _settle(page)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Largest prediction gap").wait_for(timeout=240_000)
        _settle(page)
        assert "b.optimizer.epsilon=1e-08" in page.url  # the default scenario's pair lives in the link
        for i, title in enumerate(PAGES):
            page.get_by_role("link", name=title).click()
            _settle(page)
            if title == "Attribution":  # its charts wait for the user to start the batch; Stop ends it
                page.get_by_role("button", name="Run the analysis").click()
                page.get_by_text(re.compile(r"Analysis: .+, epoch \d+")).wait_for(timeout=120_000)
                page.get_by_test_id("stSidebar").get_by_role("button", name="Stop", exact=True).click()
                page.get_by_text("Analysis stopped.").wait_for(timeout=60_000)
                _settle(page)
                assert page.get_by_text("Which factor caused how much").count() == 0
            elif title == "Reproduce":
                page.get_by_role("button", name="Download divergence_pair.py").wait_for(timeout=60_000)
            else:
                page.locator(".vega-embed").first.wait_for(timeout=60_000)
            assert page.locator('[data-testid="stException"]').count() == 0, title
            assert page.get_by_role("heading", name=title).count() >= 1
            page.screenshot(path=str(ARTIFACTS / f"{i + 1}-{title.lower().replace(' ', '-')}.png"), full_page=True)

        # Stop: a long run is ended mid-way and the last complete result stays.
        page.goto(f"{server}/?a.training.epochs=500&a.training.batch_size=4")
        _settle(page)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text(re.compile(r"A: epoch \d+/500")).wait_for(timeout=120_000)
        # a run that takes a while gets the live loss chart, growing inside the training status
        page.get_by_test_id("stExpander").locator(".vega-embed").first.wait_for(timeout=60_000)
        page.get_by_test_id("stSidebar").get_by_role("button", name="Stop", exact=True).click()
        page.get_by_text("Training stopped.").wait_for(timeout=60_000)
        _settle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "7-stopped.png"), full_page=True)

        # Link text is shown as text: no image loaded, no link drawn inside the app's warnings.
        page.goto(f"{server}/?![px](http://127.0.0.1:9/pixel.png)=1&[Click here to log in](http://127.0.0.1:9/p)=1")
        _settle(page)
        alerts = page.get_by_test_id("stAlert").filter(has_text="Ignored the unknown link parameter")
        assert alerts.count() == 2 and "![px](http://127.0.0.1:9/pixel.png)" in alerts.first.inner_text()
        assert alerts.locator("img").count() == 0 and alerts.locator("a").count() == 0
        page.screenshot(path=str(ARTIFACTS / "8-hostile-link.png"), full_page=True)
        browser.close()
