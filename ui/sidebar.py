"""The what-if sidebar, generated from the factor registry.

Every widget's key is its URL key (ui.state), so the session state *is* the pair
config: widgets built here in the frame keep their values on every page.
"""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from core.config import ConfigError, PairConfig
from core.engines import unavailable
from core.factors import ARCH, BY_PATH, DATA_RULES, FACTORS, TRAIN, Choice, Layers, Number, Text, format_value
from core.presets import PRESETS
from ui import state
from ui.text import plain

CUSTOM = "custom"
GENERATED = ("moons", "spirals", "series")
DATA_LABELS = {
    "dataset": "Dataset", "n_samples": "Samples", "data_seed": "Data seed", "noise": "Noise",
    "missing_rate": "Missing values (fraction of cells)", "missing_seed": "Missing-value seed",
    "test_fraction": "Test fraction", "split_seed": "Split seed", "window": "Window (past values)",
    "csv_path": "CSV file", "csv_target": "Target column",
}
SHARED_GROUPS = (ARCH, TRAIN)


STORE = "sidebar.values"  # widget values kept outside the widgets, see _restore


def _set(key: str, value) -> None:
    st.session_state[key] = value
    st.session_state.setdefault(STORE, {})[key] = value


def _remember(key: str) -> None:
    st.session_state.setdefault(STORE, {})[key] = st.session_state[key]


def _restore() -> None:
    """Re-assert every widget value before the widgets are drawn.

    Streamlit drops the value of a keyed widget that a script run does not draw (the inputs of a section
    that is closed on the first page), and some values have no widget at all (the uploaded CSV's path); the
    values kept in STORE are put back, so nothing is lost (tests/test_app.py's CSV tests fail without it).
    """
    for key, value in st.session_state.setdefault(STORE, {}).items():
        st.session_state[key] = value


def load_pair(pair: PairConfig) -> None:
    """Put a pair into the widgets (before they are drawn)."""
    for key, value in state.to_state(pair).items():
        _set(key, value)
    _set("b.shown", [path for path, _ in pair.b_differs])


RUN_REQUESTED = "run.requested"
FRESH = "run.fresh"  # the toggle: train again rather than serve cached runs


def request_run() -> None:
    # A flag, not the button's value: on a fresh server the first click can arrive with
    # a page-hash change, and Streamlit then resets widget values, the button's included.
    st.session_state[RUN_REQUESTED] = True


def run_pending() -> bool:
    """Run (or a scenario of the first page) was clicked: this script run trains."""
    return bool(st.session_state.get(RUN_REQUESTED))


def run_requested() -> bool:
    """As run_pending, once: the request is taken."""
    return bool(st.session_state.pop(RUN_REQUESTED, False))


def set_scenario(name: str) -> None:
    _set("scenario", name)


def load_scenario(name: str) -> None:
    """Put a scenario into the widgets, as picking it in the selectbox does (before they are drawn)."""
    set_scenario(name)
    if name != CUSTOM:
        load_pair(PRESETS[name].pair())


def _load_scenario() -> None:
    load_scenario(st.session_state["scenario"])


def _start_b_at_a() -> None:
    """A factor just added to 'B differs in' starts at A's current value."""
    _remember(state.B_FACTORS)
    before = set(st.session_state.get("b.shown", []))
    for path in st.session_state[state.B_FACTORS]:
        if path not in before:
            _set(f"b.{path}", st.session_state[f"a.{path}"])
    _set("b.shown", list(st.session_state[state.B_FACTORS]))


def _factor_name(path: str) -> str:
    """A factor as "B differs in" lists it: its label, and its group where that says more ("Engine", not
    "Engine (Engine)")."""
    f = BY_PATH[path]
    return f.label if f.label == f.group else f"{f.label} ({f.group})"


def _input(allowed, label: str, key: str, help: str | None = None) -> None:
    kept = {"key": key, "help": help, "on_change": _remember, "args": (key,)}
    if isinstance(allowed, Choice) and all(isinstance(o, bool) for o in allowed.options):
        st.toggle(label, **kept)
    elif isinstance(allowed, Choice):
        names = dict(allowed.names)
        st.selectbox(label, allowed.options, format_func=lambda option: names.get(option, str(option)), **kept)
    elif isinstance(allowed, Number) and allowed.integer:
        st.number_input(label, min_value=int(allowed.lo), max_value=int(allowed.hi), step=1, **kept)
    elif isinstance(allowed, Number):
        current = abs(float(st.session_state.get(key) or 0.0))
        step = 10.0 ** math.floor(math.log10(current)) if allowed.log and current > 0 else 0.01
        st.number_input(label, min_value=float(allowed.lo), max_value=float(allowed.hi), step=step, format="%g",
                        **kept)
    elif isinstance(allowed, (Layers, Text)):
        st.text_input(label, **kept)


def _factor_inputs(prefix: str, groups: tuple[str, ...], exclude: tuple[str, ...] = ()) -> None:
    engine, optimizer = st.session_state["a.engine.name"], st.session_state["a.optimizer.name"]
    for f in FACTORS:
        if f.group in groups and f.group not in exclude and engine in f.engines and optimizer in f.optimizers:
            _input(f.allowed, f.label, f"{prefix}.{f.path}", f.mechanism)


def _data_inputs() -> None:
    _input(DATA_RULES["dataset"], DATA_LABELS["dataset"], "data.dataset")
    dataset = st.session_state["data.dataset"]
    names = ["test_fraction", "split_seed", "missing_rate", "missing_seed"]
    if dataset in GENERATED:
        names = ["n_samples", "noise", "data_seed"] + names
    if dataset == "series":
        names.append("window")
    for name in names:
        _input(DATA_RULES[name], DATA_LABELS[name], f"data.{name}")
    if dataset == "csv":
        _csv_inputs()


UPLOADER = "csv.upload"  # the file uploader's key (not a pair field: the pair holds the saved file's path)
SAVED_UPLOAD = "csv.saved"  # (the uploader's file id, where core.data.save_upload put it)


def _forget_upload() -> None:
    """The uploader was emptied (its x): no CSV until the next upload, so Run waits for one."""
    if st.session_state.get(UPLOADER) is None:
        _set("data.csv_path", "")
        st.session_state.pop(SAVED_UPLOAD, None)


def _csv_inputs() -> None:
    from ui import run

    run.import_result_modules()  # (NumPy, with core.data: on the first page, the preparation may be importing it)
    from core import data

    upload = st.file_uploader("CSV file", type=["csv"], key=UPLOADER, on_change=_forget_upload,
                              help="Numeric feature columns and one target column. Kept on this server, "
                                   "readable by its user only; the least recently used uploads go first.")
    if upload is not None:
        saved = st.session_state.get(SAVED_UPLOAD)
        if saved is None or saved[0] != upload.file_id or not Path(saved[1]).is_file():
            try:
                saved = (upload.file_id, data.save_upload(upload.getvalue()))
            except OSError as e:
                st.error(plain(f"Could not keep the upload on this server: {e.strerror or e}"))
                return
            st.session_state[SAVED_UPLOAD] = saved
        _set("data.csv_path", saved[1])
    path = st.session_state.get("data.csv_path")
    if not path:
        st.info("Upload a CSV to use it as the dataset.")
        return
    if upload is None:
        st.caption("Using the CSV uploaded earlier in this session; upload another to replace it.")
    try:
        columns = data.csv_columns(path)
    except ConfigError as e:
        st.error(plain(str(e)))
        return
    if st.session_state.get("data.csv_target") not in columns:
        _set("data.csv_target", columns[-1])
    st.selectbox("Target column", columns, key="data.csv_target", on_change=_remember, args=("data.csv_target",),
                 format_func=lambda name: name if len(name) <= 60 else name[:59] + "…")


SECTIONS = {  # the sidebar's expanders (key: label)
    "section.data": "Data (shared by A and B)",
    "section.shared": "Architecture and training (shared)",
    "section.a": "Model A",
}
OPENED = "sidebar.opened"  # the sections open when they were last drawn lazily (see _section)


def _section(key: str, draw_inputs, lazy: bool) -> None:
    """One of the SECTIONS, with its inputs.

    `lazy`: drawn only while it is open. A closed section then sends the browser nothing to draw, so the page
    is drawn sooner, but opening one is a rerun (which would stop a training or a batch under way, so the app
    asks for this on the first page only). The inputs' values live in the session state (re-asserted by
    _restore), not in the widgets, so nothing is lost while they are hidden. Otherwise the section is a plain
    expander, open as it was when last drawn lazily.
    """
    opened = st.session_state.setdefault(OPENED, {})
    if lazy:
        box = st.expander(SECTIONS[key], key=key, on_change="rerun")
        opened[key] = box.open
        if not box.open:
            return
    else:
        box = st.expander(SECTIONS[key], expanded=opened.get(key, False))
    with box:
        draw_inputs()


def render(lazy_sections: bool = False) -> PairConfig | None:
    """Draw the sidebar; return the pair it describes, or None (with the error shown) if it cannot run.
    `lazy_sections`: see _section."""
    _restore()
    with st.sidebar:
        st.selectbox("Scenario", [CUSTOM, *PRESETS], key="scenario", on_change=_load_scenario,
                     help="Loads a ready-made pair; every control below can then be changed.")
        if st.session_state["scenario"] != CUSTOM:
            preset = PRESETS[st.session_state["scenario"]]
            try:
                edited = state.from_state(st.session_state) != preset.pair()
            except ConfigError:
                edited = True
            st.caption(("**Edited** since it was loaded. Loaded: " if edited else "") + preset.description)
        _section("section.data", _data_inputs, lazy_sections)
        _section("section.shared", lambda: _factor_inputs("a", SHARED_GROUPS), lazy_sections)
        _section("section.a", lambda: _factor_inputs("a", tuple({f.group for f in FACTORS}), exclude=SHARED_GROUPS),
                 lazy_sections)
        st.multiselect("B differs in", [f.path for f in FACTORS], key=state.B_FACTORS, on_change=_start_b_at_a,
                       format_func=_factor_name,
                       help="Only these factors differ; everything else is A's setting.")
        for path in st.session_state[state.B_FACTORS]:
            f = BY_PATH[path]
            a_value = format_value(path, st.session_state[f"a.{path}"])
            _input(f.allowed, f"B: {f.label} (A: {a_value})", f"b.{path}", f.mechanism)
        st.toggle("B starts from A's initial weights", key=state.INIT, on_change=_remember, args=(state.INIT,),
                  help="Copies A's initial weights into B, so that initialisation cannot differ.")
        st.toggle("A and B in one process", key=state.PROCESS, on_change=_remember, args=(state.PROCESS,),
                  help="Builds A, then B, in one fresh process, as two models in one notebook: the seeds are set "
                       "once and B's initializers draw after A's.")
        try:
            pair = state.from_state(st.session_state)
        except ConfigError as e:
            st.error(plain(str(e)))  # it quotes what was typed
            pair = None
        missing = sorted({m for run in (pair.a, pair.b) if (m := unavailable(run))}) if pair else []
        for message in missing:  # an engine whose framework this machine lacks: how to install it
            st.warning(message)
        left, right = st.columns(2)
        no_csv = pair is not None and pair.data.dataset == "csv" and not pair.data.csv_path
        left.button("Run", type="primary", key="run", disabled=pair is None or no_csv or bool(missing), width="stretch",
                    on_click=request_run)
        right.button("Stop", key="stop", width="stretch", help="Stops a training in progress.")
        st.toggle("Train fresh", key=FRESH, on_change=_remember, args=(FRESH,),
                  help="Trains A and B again instead of serving runs trained before from the cache. A pair that "
                       "cannot be repeated (e.g. unseeded) is always trained fresh.")
    return pair


def fresh_requested() -> bool:
    return bool(st.session_state.get(FRESH))

