"""Real-browser tests: the real server, Debian's Chromium driven by Playwright.

In file order, on one server: the first upload on the fresh server is kept; the first page's
gallery runs a scenario in one click (trained fresh, as the toggle asks) and a sidebar change
then marks the result stale; the default scenario runs and every page is visited (starting and
stopping the analysis batch on the way) with no exception; the Reproduce page's share link opens
that page on a second server, just started, with the first one's cache; a link with a scenario
opens it; the theme follows the viewer's light or dark setting. Screenshots go under
test-artifacts/ (or $TEST_ARTIFACTS).
"""

import contextlib
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

from core.presets import DEFAULT_PRESET, PRESETS
from ui import gallery

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PAGES = ["Overview", "Loss curves", "Weights", "Predictions", "Attribution", "Sweep", "Reproduce"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
VIEWPORT = {"width": 1400, "height": 1000}
# The texts of the elements matching a selector that are cut short (an ellipsis: wider than their box).
LABELS_CUT_SHORT = """selector => [...document.querySelectorAll(selector)]
  .filter(label => [label, ...label.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
  .map(label => label.textContent)"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(folder: Path, cache: Path):
    """A fresh `streamlit run app.py` on a free port, its log in `folder`, its runs cached in `cache`: its URL."""
    port = _free_port()
    log = open(folder / "streamlit.log", "w+")
    env = {**os.environ, "DIVERGENCE_LAB_CACHE": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
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
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def server(tmp_path_factory, cache):
    with _serving(tmp_path_factory.mktemp("server"), cache) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _settle(page) -> None:
    page.wait_for_timeout(300)  # let a rerun that was just triggered begin
    page.wait_for_selector(IDLE, timeout=240_000)


def _luminance(css_color: str) -> float:
    """WCAG relative luminance of a computed CSS colour, "rgb(r, g, b)"."""
    channels = [int(v) / 255 for v in re.findall(r"[\d.]+", css_color)[:3]]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_the_first_upload_on_a_fresh_server_is_kept(server, browser, tmp_path):
    """First in this module, so the server is fresh: its first run happens in Streamlit's legacy pages/ folder
    mode (app.py leaves it at once and reruns: ui.page.framed); a widget drawn in that run, under another script
    hash than later runs, used to drop the first upload."""
    table = tmp_path / "table.csv"
    table.write_text("x1,x2,label\n" + "".join(f"{i},{(i * 7) % 5},{i % 2}\n" for i in range(60)))
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{server}/?data.dataset=csv")
    _settle(page)
    page.get_by_text("Data (shared by A and B)").click()
    run = page.get_by_test_id("stSidebar").get_by_role("button", name="Run", exact=True)
    assert run.is_disabled()  # no CSV yet
    page.locator('input[type="file"]').set_input_files(str(table))
    page.get_by_text("Target column").wait_for(timeout=60_000)
    _settle(page)
    assert page.get_by_text("table.csv").count() >= 1 and not run.is_disabled()
    page.close()


def test_the_first_page_runs_a_scenario_in_one_click_trained_fresh_then_stale(server, browser):
    """Before the default scenario's test: nothing is in the cache yet, so a first visit opens on the gallery.
    The click trains the default scenario (the next test finds it in the cache), from another scenario's
    link so that the click changes the sidebar, with Train fresh on (a click runs as Run does)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1750})  # the whole gallery in the screenshot
    page.goto(server)
    _settle(page)
    for cause in gallery.CAUSES:
        assert page.get_by_role("heading", name=cause.title).count() == 1
    page.get_by_role("button", name=DEFAULT_PRESET, exact=True).wait_for()
    page.screenshot(path=str(ARTIFACTS / "0-first-page.png"), full_page=True)
    page.set_viewport_size({"width": 1024, "height": 768})  # a projector's: every scenario's name whole
    page.wait_for_timeout(300)
    assert page.evaluate(LABELS_CUT_SHORT, '[data-testid="stMain"] [data-testid="stButton"]') == []
    page.set_viewport_size({"width": 1400, "height": 1750})

    page.goto(f"{server}/?scenario=run-it-twice")
    _settle(page)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stCheckbox").filter(has_text="Train fresh").click()
    _settle(page)
    page.get_by_role("button", name=DEFAULT_PRESET, exact=True).click()
    page.get_by_text("Trained fresh (nothing served from the cache)").wait_for(timeout=240_000)
    page.get_by_text("Largest prediction gap").wait_for(timeout=60_000)
    _settle(page)
    assert sidebar.get_by_role("combobox", name="Scenario").input_value() == DEFAULT_PRESET
    assert f"scenario={DEFAULT_PRESET}" in page.url

    stale = page.get_by_text("These results are for an earlier setup")
    assert stale.count() == 0
    sidebar.get_by_text("Architecture and training (shared)").click()
    epochs = sidebar.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    stale.wait_for(timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "10-stale-result.png"), full_page=True)
    page.close()


def test_default_scenario_in_a_real_browser(server, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server)
    _settle(page)
    page.get_by_role("button", name="Run", exact=True).click()  # the first page's test trained it: from the cache
    page.get_by_text("Largest prediction gap").wait_for(timeout=240_000)
    _settle(page)
    assert "b.optimizer.epsilon=1e-08" in page.url  # the default scenario's pair lives in the link
    # on a projector's 1024 x 768 the Overview's metrics keep their labels whole (the row wraps)
    page.set_viewport_size({"width": 1024, "height": 768})
    page.wait_for_timeout(300)
    assert page.evaluate(LABELS_CUT_SHORT, '[data-testid="stMetricLabel"]') == []
    page.set_viewport_size(VIEWPORT)
    # The Overview's files are written when their button is clicked, and hold what the page shows.
    changed, compared = map(int, re.fullmatch(r"(\d+) of (\d+)", page.get_by_test_id("stMetricValue").first
                                              .inner_text().strip()).groups())
    with page.expect_download() as download:
        page.get_by_role("button", name="Prediction deltas (CSV)").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0].split(",")[:3] == ["sample", "truth", "delta"] and len(rows) == 1 + compared
    assert sum(row.endswith(",True") for row in rows[1:]) == changed
    _settle(page)
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
        elif title == "Sweep":  # Stop keeps what finished, and the page draws it (here: no run finished yet)
            page.get_by_role("button", name="Run the sweep").click()
            page.get_by_text(re.compile(r"Sweep: .+, epoch \d+")).wait_for(timeout=120_000)
            page.get_by_test_id("stSidebar").get_by_role("button", name="Stop", exact=True).click()
            page.get_by_text("Sweep stopped.").wait_for(timeout=60_000)
            page.get_by_text(re.compile(r"of the planned runs did not finish")).wait_for(timeout=60_000)
            _settle(page)
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
    # opening a sidebar section while it trains is the browser's alone (no rerun): the training goes on
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Model A", exact=True).click()
    sidebar.get_by_role("combobox", name="Engine", exact=True).wait_for(timeout=10_000)
    epoch = page.get_by_text(re.compile(r"A: epoch \d+/500")).first
    before = int(re.search(r"epoch (\d+)/", epoch.inner_text())[1])
    page.wait_for_function("n => /A: epoch (\\d+)\\/500/.test(document.body.innerText) && "
                           "+document.body.innerText.match(/A: epoch (\\d+)\\/500/)[1] > n", arg=before, timeout=60_000)
    assert page.get_by_text("Training stopped.").count() == 0
    sidebar.get_by_role("button", name="Stop", exact=True).click()
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
    page.close()


def test_the_share_link_opens_its_page_in_the_frame_on_a_server_that_just_started(server, cache, browser, tmp_path):
    """After the default scenario's test (its result is cached). A server that has just started (or woken up) is
    in Streamlit's legacy pages/ folder mode until app.py's st.navigation has run once; a link straight to a page,
    such as the Reproduce page's share link, then ran the page's file alone: no sidebar, file names as the
    navigation. Opened first on a fresh server with the same cache, the link shows the page inside the frame,
    with its pair and its cached result."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{server}/reproduce")
    _settle(page)
    shared = page.get_by_test_id("stCode").last.inner_text().strip()
    assert shared.startswith(f"{server}/reproduce?") and f"scenario={DEFAULT_PRESET}" in shared
    page.close()
    with _serving(tmp_path, cache) as fresh:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(shared.replace(server, fresh))
        _settle(page)
        page.get_by_role("button", name="Download divergence_pair.py").wait_for(timeout=60_000)
        _settle(page)
        sidebar = page.get_by_test_id("stSidebar")
        assert sidebar.get_by_role("combobox", name="Scenario").input_value() == DEFAULT_PRESET
        assert sidebar.get_by_text(PRESETS[DEFAULT_PRESET].description, exact=True).count() == 1  # not edited
        # the app's navigation (each link: its icon's name, then its title), not one made from the file names
        assert [link.inner_text().split()[-1] for link in sidebar.get_by_test_id("stSidebarNavLink").all()] == [
            title.split()[-1] for title in PAGES]
        assert page.get_by_role("heading", name="Reproduce").count() == 1
        assert page.get_by_test_id("stCode").last.inner_text().strip() == shared.replace(server, fresh)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.close()


def test_a_link_with_a_scenario_opens_it_in_the_sidebar(server, browser):
    page = browser.new_page(viewport=VIEWPORT)
    # the link the app writes for a pair of nothing but defaults, and a hand-written one with just the name
    for link in ("/?init=none&scenario=run-it-twice", "/?scenario=run-it-twice"):
        page.goto(server + link)
        _settle(page)
        sidebar = page.get_by_test_id("stSidebar")
        assert sidebar.get_by_role("combobox", name="Scenario").input_value() == "run-it-twice", link
        assert sidebar.get_by_text(PRESETS["run-it-twice"].description, exact=True).count() == 1, link  # not edited
        assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_the_theme_follows_the_viewers_light_or_dark_setting(server, browser):
    """After the default scenario's test: this server has its result, so a first visit opens on it."""
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport=VIEWPORT, color_scheme=scheme)
        page.goto(server)
        _settle(page)
        page.get_by_text("Largest prediction gap").wait_for(timeout=60_000)
        page.locator(".vega-embed").first.wait_for(timeout=60_000)
        background = _luminance(page.get_by_test_id("stApp").evaluate("e => getComputedStyle(e).backgroundColor"))
        heading = page.get_by_role("heading", name="Divergence Lab")
        title = _luminance(heading.evaluate("e => getComputedStyle(e).color"))
        assert (background < 0.05) == (scheme == "dark"), (scheme, background)
        contrast = (max(background, title) + 0.05) / (min(background, title) + 0.05)
        assert contrast >= 4.5, (scheme, contrast)  # WCAG AA for body text
        if scheme == "dark":
            page.screenshot(path=str(ARTIFACTS / "9-dark.png"), full_page=True)
        page.close()
