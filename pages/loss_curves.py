"""Loss curves: train and test loss and metric for A and B, and the gap per epoch."""

import streamlit as st

from ui import charts, tables
from ui.page import result_or_stop

result = result_or_stop()
st.header("Loss curves")
metric_name = "accuracy" if result.summary["data"]["task"] == "classification" else "mean absolute error"
left, right = st.columns(2)
measure = left.radio("Show", ["loss", "metric"], horizontal=True,
                     format_func=lambda m: m if m == "loss" else metric_name)
log_scale = right.toggle("Log scale", value=False)
history = tables.history(result)
st.altair_chart(charts.loss_curves(history, measure, log_scale), width="stretch")
st.caption("A: wide pale line, hollow dots. B: thin line, small filled dots, drawn on top: where the curves "
           "coincide, B runs inside A. Solid: train, dashed: test.")
st.subheader("A − B per epoch")
st.altair_chart(charts.gap_per_epoch(tables.gaps(history, measure), measure), width="stretch")
