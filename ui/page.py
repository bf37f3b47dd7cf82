"""What every page starts with, and what pages share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import streamlit as st

from ui import gallery, run

if TYPE_CHECKING:
    from core.pair import PairResult


def framed() -> None:
    """Make sure the page runs inside app.py's frame (the sidebar, the pair, the navigation); app.py and every
    page call it first.

    Until some session on this server has run app.py's st.navigation, Streamlit is in its legacy `pages/` folder
    mode (on a server that has just started, or woken up): a link straight to a page (/sweep?..., or the
    Reproduce page's share link) runs the page's file alone, with no sidebar, no pair and the file names as the
    navigation; app.py itself runs as one page of that navigation. The mode is then switched off, as st.navigation
    does, and the script reruns before it has drawn anything, so that every widget is drawn as in every later run
    (one drawn in that mode used to lose the first upload, tests/test_browser.py) and app.py routes to the page
    the link names, with the link's parameters.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def result_or_stop() -> PairResult:
    """The result to draw, or the first page (ui.gallery) when there is none (and the page ends there); the page
    inside app.py's frame (framed).

    When the sidebar has moved on since that result was made, the page says so first.
    """
    framed()
    result = run.current()
    if result is None:
        gallery.show()
        st.stop()
    from core.batch import as_reloaded  # (after the first page, which draws without NumPy: see ui.run)

    pair = st.session_state.get(run.SIDEBAR_PAIR)
    if pair is None or as_reloaded(pair.to_dict()) != result.summary["config"]:
        st.info("These results are for an earlier setup, not the one in the sidebar now: press **Run** to train "
                "the current one.", icon=":material/history:")
    if result.cached:
        from core.export import pair_not_reproducible
        from core.factors import parse_pair

        if reasons := pair_not_reproducible(parse_pair(result.summary["config"])):
            st.info(f"This pair cannot be repeated ({'; '.join(reasons)}): these numbers are one earlier training "
                    "kept in the cache. **Run** trains it again.", icon=":material/casino:")
    return result


def download(where, label: str, make: Callable[[], str | bytes], file_name: str, mime: str) -> None:
    """A download button in `where` (st, or a column) whose file `make()` writes when it is clicked, not on
    every draw of the page. The click reruns nothing: a rerun could retire the file before the browser fetched it."""
    where.download_button(label, make, file_name, mime, on_click="ignore")
