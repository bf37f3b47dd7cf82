"""Training from the app: live progress, Stop, and the last good result kept on screen."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import streamlit as st

from core import ray_executor
from core.config import ConfigError, DataConfig, PairConfig
from core.pool import default_pool
from core.storage import nothing_saved, runs_folder
from ui.text import plain

if TYPE_CHECKING:
    from core.pair import PairResult
# core.pair (and with it NumPy, the data sets, the diagnosis: ~0.1 s) is imported where a result is read or
# trained, not here: every first visit lands on the first page, which draws without it; prepare_in_background
# loads it once that page is drawn.

RESULT, ERROR, TRAINING = "result", "run_error", "training"
SIDEBAR_PAIR = "sidebar.pair"  # the pair the sidebar describes now (None while a control is out of range)
REDRAW_INTERVAL_S = 1.0


class Throttle:
    """Progress redraws at most once per REDRAW_INTERVAL_S: each costs the server and the
    browser CPU that the workers need."""

    def __init__(self):
        self.drawn_at = 0.0

    def due(self, force: bool = False) -> bool:
        if force or time.monotonic() - self.drawn_at > REDRAW_INTERVAL_S:
            self.drawn_at = time.monotonic()
            return True
        return False


_prepared = threading.Event()
# How long after the first page's script ends the preparation starts. The browser is still at work then: it fetches
# the code of each kind of widget the page uses and draws them (about a second after the script here), and the
# server serves that code; an import holding the server's Python thread, or a worker importing TensorFlow, would
# slow that down (bench/app_speed.py measures the first page).
PREPARE_DELAY_S = 1.5


def prepare_in_background() -> None:
    """Once per server, off the script thread and after the first page is drawn: what the first Run needs,
    its modules (import_result_modules), the worker pool (its workers import TensorFlow; on Ray, the node pools)
    and the default data (scikit-learn). A Run before then starts the pool itself."""
    if not _prepared.is_set():
        _prepared.set()
        timer = threading.Timer(PREPARE_DELAY_S, _prepare)
        timer.daemon = True
        timer.start()


def _prepare() -> None:
    import_result_modules()
    from core import data

    if ray_executor.address():  # the batches run on Ray: its node pools, no local one
        try:
            ray_executor.prepare()
        except ConfigError:  # (the first Run says why)
            pass
    else:
        default_pool()
    data.load(DataConfig())
    from ui import charts

    charts.live_loss_spec()  # (and the schema Altair validates with)


# One thread at a time imports what a result needs: two threads importing narwhals at once (Altair imports it,
# and scikit-learn) tripped Python's import deadlock detection (seen in a test).
_importing = threading.RLock()
_imported = threading.Event()


def import_result_modules() -> None:
    """What every script run but the first page's needs to train, read or chart a result: core.pair (NumPy) and
    the chart and table modules (pandas, Altair, narwhals), imported once per server. The background preparation
    imports them once the first page is drawn; a script run that comes while it does waits for it (no longer than
    importing them itself), and one that comes before imports them."""
    if _imported.is_set():
        return
    with _importing:
        if not _imported.is_set():
            import core.pair  # noqa: F401
            from ui import charts, tables  # noqa: F401

            _imported.set()


def show_cached(pair: PairConfig) -> None:
    """A new session opens on the pair's result when this server has all its runs."""
    if nothing_saved(runs_folder()):  # (a fresh server: answered without importing core.pair)
        return
    with _importing:  # (a new session's first page: the preparation may be importing it for another)
        from core.pair import cached_result
    hit = cached_result(pair)
    if hit is not None:
        st.session_state[RESULT] = hit


def current() -> PairResult | None:
    """The last complete result (it stays until a newer one is complete)."""
    return st.session_state.get(RESULT)


def show_messages(training_now: bool) -> None:
    """Messages left by the previous script run (not repeated when a new training starts)."""
    if st.session_state.pop(TRAINING, None):  # the previous script run ended inside training: Stop
        st.info("Training stopped." + (" The last complete result is still shown." if current() else ""))
    if st.session_state.get(ERROR) and not training_now:
        st.error(plain(st.session_state[ERROR]))


def train(pair: PairConfig, fresh: bool = False) -> None:
    """Train the pair with progress per model and loss curves that grow while it runs.

    Runs trained before come from the cache, unless `fresh` asks for a new training or the
    pair cannot be repeated (its numbers change from one fresh process to the next): a
    cached copy of such a run would pass one earlier sample off as the result.
    """
    from core.export import pair_not_reproducible
    from core.pair import MODELS, full_plan, run_pair
    from ui import charts  # (imported by then: app.py calls import_result_modules before a Run)

    def _label(run: str) -> str:
        """"A", "B", or the check's own name ("A again")."""
        return run.upper() if run in MODELS else run

    reuse = not fresh and not pair_not_reproducible(pair)

    # A and B, then the runs that check why they differ (core.diagnosis), each with its own bar.
    epochs = {name: planned.run.training.epochs for name, planned in full_plan(pair).items()}
    checks = len(epochs) - len(MODELS)
    rows: list[dict] = []
    charted = 0  # rows in the live chart as last drawn: the checks' runs add none, so their epochs never redraw it
    latest: dict[str, tuple[int, float]] = {}  # run -> its last epoch and loss
    redraw = Throttle()  # every run's progress and the live chart together
    st.session_state[TRAINING] = True
    st.session_state[ERROR] = None
    title = "Training A and B in fresh worker processes" + (
        f", and {checks} run{'s' * (checks > 1)} that check{'s' * (checks == 1)} why they differ" if checks
        else "") + "…"
    shown = {m: (0.0, f"{_label(m)}: waiting for a worker") for m in epochs}  # run -> its bar's value and text
    bars: dict = {}
    status = live = None

    def draw_status() -> None:
        """The status with a bar per run and the live chart, once. Streamlit's st.status sleeps 50 ms when it is
        created (its workaround for the browser missing a quick first update), so it is drawn at the first event
        from a worker, when the workers have their jobs, rather than before run_pair hands them out."""
        nonlocal status, live
        if status is None:
            status = st.status(title, expanded=True)
            bars.update({m: status.progress(value, text=text) for m, (value, text) in shown.items()})
            live = status.empty()

    def show(model: str, value: float, text: str) -> None:
        shown[model] = (value, text)
        if model in bars:
            bars[model].progress(value, text=text)

    def on_event(model: str, event: dict) -> None:
        nonlocal charted
        label = _label(model)
        if event["type"] == "cached":  # (said before any job is handed out: the status waits)
            show(model, 1.0, f"{label}: trained before, taken from the cache")
            return
        draw_status()
        if event["type"] == "started":
            show(model, 0.0, f"{label}: starting (TensorFlow import if the worker is cold)")
        elif event["type"] == "epoch":
            n = event["epoch"]
            if model in MODELS:
                rows.append({"epoch": n, "model": label, "loss": event["loss"]})
            latest[model] = (n, event["loss"])
            if redraw.due(force=n == epochs[model]):  # always at a last epoch
                for m, (done, loss) in latest.items():
                    show(m, min(done / epochs[m], 1.0), f"{_label(m)}: epoch {done}/{epochs[m]}, loss {loss:.4g}")
                if len(rows) > charted:
                    live.vega_lite_chart(rows, charts.live_loss_spec(), width="stretch")
                    charted = len(rows)
        elif event["type"] == "error":
            show(model, 1.0, plain(f"{label}: {event['message']}"))

    try:
        result = run_pair(pair, on_event=on_event, reuse=reuse)
    except ConfigError as e:
        result = None
        st.session_state[ERROR] = str(e)
    st.session_state.pop(TRAINING, None)  # still set if Stop interrupted this script run
    draw_status()  # (when no worker had a job: everything cached, or refused)
    if result is not None and result.complete:
        st.session_state[RESULT] = result
        st.session_state[ERROR] = None
        status.update(label="Served from the cache" if result.cached else "Training done" if reuse else
                      "Trained fresh (nothing served from the cache)", state="complete", expanded=False)
    else:
        if result is not None:
            st.session_state[ERROR] = "The run did not finish; the last complete result is still shown. " + \
                " ".join(f"{m.upper()}: {result.summary[m]['message']}" for m in ("a", "b")
                         if result.summary[m]["status"] not in ("ok", "diverged"))
        status.update(label="Training failed", state="error", expanded=False)
    if st.session_state[ERROR]:  # outside the collapsed status, where the user looks
        st.error(plain(st.session_state[ERROR]))


BATCH_RUNNING = "batch.running"  # the label of the analysis batch under way (still set after Stop ended it)


def batch_cost(plan: dict, fingerprint: str) -> tuple[str, int]:
    """What a batch will train and where, said before it starts (runs trained before come from the cache), and its
    epochs."""
    from core.batch import to_train

    new = to_train(plan, fingerprint)
    epochs = sum(plan[name].run.training.epochs for name in new)
    reused = len(plan) - len(new)
    if not new:
        return f"nothing to train, all {len(plan)} planned runs were trained before and come from the cache", 0
    where = (f"on the Ray cluster at `{cluster}`, as many at once as its nodes' CPUs allow"
             if (cluster := ray_executor.address()) else "as many at once as this machine's workers allow")
    return f"**{len(new)} runs** to train ({epochs} epochs in all, {where})" + (
        f"; {reused} of the {len(plan)} planned runs were trained before and come from the cache"
        if reused else ""), epochs


def run_batch(pair: PairConfig, plan: dict, label: str, total: int) -> dict | None:
    """The batch with one progress bar over its `total` epochs to train; Stop (or any rerun) ends its workers.
    None when it could not start (the reason is shown)."""
    from core import analysis

    bar = st.progress(0.0, text=f"{label}: starting workers")
    done = {"epochs": 0}
    redraw = Throttle()

    def on_event(name, event):
        if event["type"] == "epoch":
            done["epochs"] += 1
            if redraw.due():
                bar.progress(min(done["epochs"] / max(total, 1), 1.0), text=f"{label}: {name}, epoch {event['epoch']}")

    st.session_state[BATCH_RUNNING] = label  # still set on the next script run if Stop ended this one
    try:
        outcomes = analysis.execute(pair, plan, on_event=on_event)
    except ConfigError as e:  # a planned run that costs more than a run may (core.budget), or data gone
        st.error(plain(f"{label} not started: {e}"))
        outcomes = None
    del st.session_state[BATCH_RUNNING]
    bar.empty()
    return outcomes


def stopped_batch() -> str | None:
    """The label of a batch that Stop ended in the previous script run (said once)."""
    return st.session_state.pop(BATCH_RUNNING, None)
