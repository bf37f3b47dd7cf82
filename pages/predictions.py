"""Predictions: how far apart A and B predict, per sample, and where."""

import numpy as np
import streamlit as st

from ui import charts, tables
from ui.page import result_or_stop

result = result_or_stop()
data = result.summary["data"]
st.header("Predictions")
frame = tables.predictions(result)
classify = data["task"] == "classification"
left, right = st.columns(2)
left.altair_chart(charts.histogram(frame, "delta", f"{charts.GAP['largest'].capitalize()}, one per sample",
                                   "|A − B|"), width="stretch")
right.altair_chart(charts.scatter_a_vs_b(frame), width="stretch")
right.caption("Each model's probability of the true class." if classify else "Each model's prediction.")

st.subheader("Where they disagree most")
top = frame.sort_values("delta", ascending=False).head(8)
columns = ["sample", "truth", "class_a", "class_b", "a", "b", "delta"] if classify else ["sample", "truth", "a", "b",
                                                                                          "delta"]
st.dataframe(top[columns], hide_index=True)
if data["image_shape"]:
    x_test = result.arrays["data/x_test"]
    images = st.columns(len(top))
    for col, (_, row) in zip(images, top.iterrows()):
        pixels = np.nan_to_num(x_test[int(row["sample"])]).reshape(data["image_shape"])
        col.image(pixels / max(pixels.max(), 1e-9), caption=f"#{int(row['sample'])}: A {int(row['class_a'])}, "
                  f"B {int(row['class_b'])}", clamp=True, width="stretch")

grid = tables.decision_grid(result)
if grid is not None and classify:
    st.subheader("Decision boundaries")
    cols = st.columns(3)
    for col, field, title in zip(cols, ["A", "B", "disagree"], ["A: P(class 1)", "B: P(class 1)", "Classes differ"]):
        col.altair_chart(charts.decision_map(grid, field, title))
if result.summary["config"]["data"]["dataset"] == "series":
    st.subheader("Forecasts over the truth")
    st.altair_chart(charts.forecast(tables.forecast(result)), width="stretch")
