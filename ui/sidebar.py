"""The what-if sidebar, generated from the factor registry.

Every widget's key is its URL key (ui.state), so the session state *is* the pair
config: widgets built here in the frame keep their values on every page.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path

import streamlit as st

from core.config import ConfigError, PairConfig
from core.factors import ARCH, BY_PATH, DATA_RULES, FACTORS, TRAIN, Choice, Layers, Number, Text, format_value
from core.presets import DEFAULT_PRESET, PRESETS
from ui import state

CUSTOM = "custom"
DEFAULT_SCENARIO = DEFAULT_PRESET
GENERATED = ("moons", "spirals", "series")
DATA_LABELS = {
    "dataset": "Dataset", "n_samples": "Samples", "data_seed": "Data seed", "noise": "Noise",
    "missing_rate": "Missing values (fraction of cells)", "missing_seed": "Missing-value seed",
    "test_fraction": "Test fraction", "split_seed": "Split seed", "window": "Window (past values)",
    "csv_path": "CSV file", "csv_target": "Target column",
}
SHARED_GROUPS = (ARCH, TRAIN)


def load_pair(pair: PairConfig) -> None:
    """Put a pair into the widgets (before they are drawn)."""
    values = state.to_state(pair)
    st.session_state.update(values)
    st.session_state["b.shown"] = list(values[state.B_FACTORS])


def _load_scenario() -> None:
    name = st.session_state["scenario"]
    if name != CUSTOM:
        load_pair(PRESETS[name].pair())


def _start_b_at_a() -> None:
    """A factor just added to 'B differs in' starts at A's current value."""
    before = set(st.session_state.get("b.shown", []))
    for path in st.session_state[state.B_FACTORS]:
        if path not in before:
            st.session_state[f"b.{path}"] = st.session_state[f"a.{path}"]
    st.session_state["b.shown"] = list(st.session_state[state.B_FACTORS])


def _input(allowed, label: str, key: str, help: str | None = None) -> None:
    if isinstance(allowed, Choice) and all(isinstance(o, bool) for o in allowed.options):
        st.toggle(label, key=key, help=help)
    elif isinstance(allowed, Choice):
        st.selectbox(label, allowed.options, key=key, help=help)
    elif isinstance(allowed, Number) and allowed.integer:
        st.number_input(label, min_value=int(allowed.lo), max_value=int(allowed.hi), step=1, key=key, help=help)
    elif isinstance(allowed, Number):
        current = abs(float(st.session_state.get(key) or 0.0))
        step = 10 ** math.floor(math.log10(current)) if allowed.log and current > 0 else 0.01
        st.number_input(label, min_value=float(allowed.lo), max_value=float(allowed.hi), step=step, format="%g",
                        key=key, help=help)
    elif isinstance(allowed, (Layers, Text)):
        st.text_input(label, key=key, help=help)


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


def _csv_inputs() -> None:
    upload = st.file_uploader("CSV file", type=["csv"], help="Numeric feature columns and one target column.")
    if upload is not None:
        content = upload.getvalue()
        path = Path(tempfile.gettempdir()) / "divergence-lab-uploads" / f"{hashlib.sha256(content).hexdigest()[:16]}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        st.session_state["data.csv_path"] = str(path)
    path = st.session_state.get("data.csv_path")
    if not path:
        st.info("Upload a CSV to use it as the dataset.")
        return
    import pandas as pd

    try:
        columns = list(pd.read_csv(path, nrows=0).columns)
    except Exception as e:  # the message goes to the user; nothing else depends on this read
        st.error(f"The file is not a readable CSV: {e}")
        return
    if st.session_state.get("data.csv_target") not in columns:
        st.session_state["data.csv_target"] = columns[-1]
    st.selectbox("Target column", columns, key="data.csv_target")


def render() -> PairConfig | None:
    """Draw the sidebar; return the pair it describes, or None (with the error shown) if it cannot run."""
    with st.sidebar:
        st.selectbox("Scenario", [CUSTOM, *PRESETS], key="scenario", on_change=_load_scenario,
                     help="Loads a ready-made pair; every control below can then be changed.")
        if st.session_state["scenario"] != CUSTOM:
            st.caption(PRESETS[st.session_state["scenario"]].description)
        with st.expander("Data (shared by A and B)"):
            _data_inputs()
        with st.expander("Architecture and training (shared)"):
            _factor_inputs("a", SHARED_GROUPS)
        with st.expander("Model A"):
            _factor_inputs("a", tuple({f.group for f in FACTORS}), exclude=SHARED_GROUPS)
        st.multiselect("B differs in", [f.path for f in FACTORS], key=state.B_FACTORS, on_change=_start_b_at_a,
                       format_func=lambda path: f"{BY_PATH[path].label} ({BY_PATH[path].group})",
                       help="Only these factors differ; everything else is A's setting.")
        for path in st.session_state[state.B_FACTORS]:
            f = BY_PATH[path]
            a_value = format_value(path, st.session_state[f"a.{path}"])
            _input(f.allowed, f"B: {f.label} (A: {a_value})", f"b.{path}", f.mechanism)
        st.toggle("B starts from A's initial weights", key=state.INIT,
                  help="Copies A's initial weights into B, so that initialisation cannot differ.")
        try:
            pair = state.from_state(st.session_state)
        except ConfigError as e:
            st.error(str(e))
            pair = None
        left, right = st.columns(2)
        left.button("Run", type="primary", key="run", disabled=pair is None, width="stretch")
        right.button("Stop", key="stop", width="stretch", help="Stops a training in progress.")
    return pair

