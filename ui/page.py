"""What every page starts with."""

import streamlit as st

from core.pair import PairResult
from ui import run


def result_or_stop() -> PairResult:
    """The result to draw, or a hint to press Run (and the page ends there)."""
    result = run.current()
    if result is None:
        st.info("Pick a scenario or set up A and B in the sidebar, then press **Run**.")
        st.stop()
    return result
