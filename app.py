"""Divergence Lab: the frame. Page config, the shared sidebar, the URL, st.navigation.

The Streamlit process never imports TensorFlow: training happens in core's worker
processes; the pages only render what they measured.
"""

import streamlit as st

from core.presets import DEFAULT_PRESET
from ui import run, sidebar, state
from ui.page import framed
from ui.text import plain

framed()  # (a fresh server's first run, in Streamlit's legacy pages/ folder mode: see ui.page.framed)

st.set_page_config(page_title="Divergence Lab", page_icon=":material/compare_arrows:", layout="wide")

if "loaded" not in st.session_state:  # a new session: the link (or the default scenario) sets every control
    pair, warnings = state.from_params(st.query_params.to_dict())
    sidebar.load_pair(pair)
    run.show_cached(pair)  # a shared link, or the default scenario, opens on its results when this server has them
    named = state.scenario_in(st.query_params)
    sidebar.set_scenario(named or (sidebar.CUSTOM if st.query_params else DEFAULT_PRESET))
    st.session_state["link_warnings"] = warnings
    st.session_state["loaded"] = True

for warning in st.session_state["link_warnings"]:
    st.warning(plain(warning))
overview = st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True)
page = st.navigation([
    overview,
    st.Page("pages/loss_curves.py", title="Loss curves", icon=":material/show_chart:"),
    st.Page("pages/weights.py", title="Weights", icon=":material/balance:"),
    st.Page("pages/predictions.py", title="Predictions", icon=":material/scatter_plot:"),
    st.Page("pages/attribution.py", title="Attribution", icon=":material/troubleshoot:"),
    st.Page("pages/sweep.py", title="Sweep", icon=":material/linear_scale:"),
    st.Page("pages/reproduce.py", title="Reproduce", icon=":material/terminal:"),
])
first_page = page is overview and run.current() is None and not sidebar.run_pending()  # the gallery
if not first_page:  # a result to show, a Run or another page (the first page draws sooner without them)
    run.import_result_modules()
# The first page draws the sidebar's sections with their inputs only once opened, so that it is drawn sooner;
# everywhere else they are drawn, so that opening a section is no rerun (a rerun would stop a training or a
# batch under way).
pair = sidebar.render(lazy_sections=first_page)
st.session_state[run.SIDEBAR_PAIR] = pair
if pair is not None:
    scenario = st.session_state["scenario"]
    params = state.to_params(pair, None if scenario == sidebar.CUSTOM else scenario)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)

st.title("Divergence Lab")
training_now = sidebar.run_requested() and pair is not None
run.show_messages(training_now)
if training_now:
    run.train(pair, fresh=sidebar.fresh_requested())
try:
    page.run()
finally:
    # Once the page is drawn (a page without a result ends in st.stop), get ready for the first Run
    # without competing with the first page for the CPU.
    run.prepare_in_background()
