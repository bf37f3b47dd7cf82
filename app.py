"""Divergence Lab, first cut: pick a scenario, train the pair, read the measured gap.

The Streamlit process never imports TensorFlow: training happens in core's worker
processes, and this script only renders what they measured.
"""

import altair as alt
import pandas as pd
import streamlit as st

from core.config import ConfigError
from core.factors import factor, format_value
from core.pair import run_pair
from core.presets import DEFAULT_PRESET, PRESETS

st.set_page_config(page_title="Divergence Lab", layout="wide")
st.title("Divergence Lab")
st.caption("Same network, same data, same seed: why do two TensorFlow / Keras runs disagree?")

with st.sidebar:
    name = st.selectbox("Scenario", list(PRESETS), index=list(PRESETS).index(DEFAULT_PRESET))
    st.write(PRESETS[name].description)
    epochs = st.slider("Epochs", 1, 100, 20)
    run_clicked = st.button("Run", type="primary")

pair = PRESETS[name].pair(epochs=epochs)
differs = pd.DataFrame([{"factor": factor(path).label, "A": format_value(path, pair.a.get(path)),
                         "B": format_value(path, value), "mechanism": factor(path).mechanism}
                        for path, value in pair.b_differs])
st.subheader("What differs")
if differs.empty:
    st.write("Nothing in the config: A and B are the same setup, each trained in its own fresh process.")
else:
    st.dataframe(differs, hide_index=True)

if run_clicked:
    bars = {m: st.progress(0.0, text=f"{m.upper()}: waiting for a worker") for m in ("a", "b")}

    def on_event(model, event):
        if event["type"] == "epoch":
            bars[model].progress(event["epoch"] / epochs, text=f"{model.upper()}: epoch {event['epoch']}/{epochs}")

    try:
        st.session_state["result"] = run_pair(pair, on_event=on_event)
    except ConfigError as e:
        st.error(str(e))

result = st.session_state.get("result")
if result is not None:
    s = result.summary
    for m in ("a", "b"):
        if s[m]["message"]:
            (st.warning if s[m]["status"] == "diverged" else st.error)(f"{m.upper()}: {s[m]['message']}")
    if s["compare"]:
        c = s["compare"]
        cols = st.columns(4)
        cols[0].metric("Test predictions that change class", f"{c['disagreements']} of {s['data']['n_test']}")
        cols[1].metric("Largest prediction gap", f"{c['prediction_max_abs_delta']:.3g}")
        first = c["first_divergent_epoch"]
        cols[2].metric("Weights first differ at epoch", "never" if first is None else str(first))
        cols[3].metric("Weights bitwise equal", "yes" if c["weights_bitwise_equal"] else "no")
        curves = pd.DataFrame(
            [{"epoch": row["epoch"], "model": m.upper(), "split": split, "loss": row[key]}
             for m in ("a", "b") for row in s[m]["history"] for split, key in (("train", "loss"), ("test", "test_loss"))])
        st.subheader("Loss")
        st.altair_chart(alt.Chart(curves).mark_line(point=True).encode(
            x="epoch:Q", y="loss:Q", color="model:N", strokeDash="split:N",
            tooltip=["model", "split", "epoch", alt.Tooltip("loss:Q", format=".6g")]), width="stretch")
