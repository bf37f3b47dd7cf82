"""Weights: A and B per variable at initialisation and at the end, A − B, and distance per epoch."""

import streamlit as st

from ui import charts, tables
from ui.page import result_or_stop

result = result_or_stop()
st.header("Weights")
comparable = [n for n in result.weights("a") if n not in result.summary["compare"]["not_comparable"]]
name = st.selectbox("Variable", comparable)
left, right = st.columns(2)
left.altair_chart(charts.histogram_overlay(tables.weight_values(result, name, 0), "At initialisation"),
                  width="stretch")
right.altair_chart(charts.histogram_overlay(tables.weight_values(result, name, -1), "After the last epoch"),
                   width="stretch")
st.altair_chart(charts.histogram(tables.weight_delta(result, name, -1), "A − B", "A − B after the last epoch"),
                width="stretch")
st.subheader("Distance per epoch")
measure = st.radio("Measure", ["l2", "relative", "max_abs", "cosine"], horizontal=True)
distances = tables.distances(result)
st.altair_chart(charts.weight_distance(distances[distances["layer"] != "all weights"], measure), width="stretch")
