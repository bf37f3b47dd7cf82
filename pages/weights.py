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
left, right = st.columns([3, 1])
measure = left.radio("Measure", list(charts.WEIGHT_MEASURES), format_func=charts.WEIGHT_MEASURES.get)
distances = tables.distances(result)
distances = distances[distances["layer"] != "all weights"]
# On by default where the distances span decades: a linear axis shows those as flat, then a jump.
log_scale = right.toggle("Log scale", value=charts.spans_decades(distances[measure]), disabled=measure == "cosine",
                         help="A log axis cannot show 0: epochs where A and B are bitwise equal sit on the labelled "
                              "line at the bottom.")
st.altair_chart(charts.weight_distance(distances, measure, log_scale), width="stretch")
