"""Reproduce: a standalone script for A and B, the config, the results to check against, the environment, the link."""

import json
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from core.config import ConfigError
from core.export import SCRIPT_NAME, not_reproducible, standalone_script
from core.factors import parse_pair
from ui import state, tables
from ui.page import download, result_or_stop
from ui.text import plain

result = result_or_stop()
s = result.summary
pair = parse_pair(s["config"])
st.header("Reproduce")

st.subheader("Standalone script")
try:
    script = standalone_script(pair)
except ConfigError as e:  # e.g. a CSV that is no longer where it was when the pair ran
    st.error(plain(f"The script cannot be written for this pair: {e}"))
    script = None
if script is not None:
    st.write(f"One file that imports nothing of this app: the app's own training code for this pair, copied "
             f"unchanged, and the pair's config. `python {SCRIPT_NAME}` trains A and B, each in a fresh process, "
             "prints each model's final-weights digest and the largest |A − B| per variable; with the library "
             "versions below and the same kind of machine the numbers are the ones under **Results**, to the bit.")
    for label, run in (("A", pair.a), ("B", pair.b)):
        for reason in not_reproducible(run):
            st.warning(f"{label} is not repeatable: {reason}")
    st.download_button(f"Download {SCRIPT_NAME}", script, SCRIPT_NAME, "text/x-python", type="primary")
    if pair.data.dataset == "csv":
        csv = Path(pair.data.csv_path)
        st.info(f"The script reads the data from `{csv}` (`CSV_PATH` at its top): point that at your copy.")
        if csv.exists():
            download(st, "Download the CSV", csv.read_bytes, "data.csv", "text/csv")
    with st.expander("Show the script"):
        st.code(script, language="python", line_numbers=True)

st.subheader("Config")
config = json.dumps(s["config"], indent=2)
st.download_button("Download the pair config (JSON)", config, "pair.json", "application/json")
st.code(config, language="json")

st.subheader("Results")
st.write("Final-weights digests (SHA-256 of every variable's name, dtype, shape and bytes):")
st.dataframe([{"model": label, "digest": digest} for label, digest in tables.final_digests(result).items()],
             hide_index=True)
st.dataframe(tables.final_metrics(result), hide_index=True)
st.dataframe(tables.final_gaps(result), hide_index=True, column_config={
    "max |A-B|": st.column_config.NumberColumn(format="%.3g")})
st.download_button("Download the result (JSON)", json.dumps(s, indent=1), "result.json", "application/json")

st.subheader("Environment")
fingerprint = tables.fingerprint(result)
st.download_button("Download the environment (JSON)", json.dumps(fingerprint, indent=1), "environment.json",
                   "application/json")
st.json(fingerprint, expanded=2)

st.subheader("Share link")
query = urlencode(state.to_params(pair, state.scenario_of(pair)))
scheme, host, path, _, _ = urlsplit(st.context.url or "")
st.code(urlunsplit((scheme, host, path, query, "")) if host else f"?{query}", language=None)
st.caption("Opening the link restores this pair in the sidebar, and its results where this server has them cached.")
