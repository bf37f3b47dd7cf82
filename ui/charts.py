"""Pure chart builders: data frame in, Altair chart out (no Streamlit here).

The frames come from `ui.tables`, which turns a PairResult into tidy data.
Colour always means the model (A or B), with the same two colours everywhere.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

MODEL_COLORS = alt.Scale(domain=["A", "B"], range=["#1f77b4", "#ff7f0e"])
DIFF_COLOR = "#6c757d"


def _model_color():
    return alt.Color("model:N", scale=MODEL_COLORS, title="model")


def loss_curves(history: pd.DataFrame, measure: str = "loss", log_scale: bool = False) -> alt.Chart:
    """history: epoch, model, split, loss, metric. Colour = model, dash = split."""
    y = alt.Y(f"{measure}:Q", title=measure, scale=alt.Scale(type="log" if log_scale else "linear"))
    return alt.Chart(history).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch"), y=y, color=_model_color(),
        strokeDash=alt.StrokeDash("split:N", title="split"),
        tooltip=["model", "split", "epoch", alt.Tooltip(f"{measure}:Q", format=".6g")],
    ).properties(height=320)


def live_loss(rows: list[dict]) -> alt.Chart:
    """rows: epoch, model, loss, as they arrive during training."""
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch"), y=alt.Y("loss:Q", title="train loss"), color=_model_color(),
    ).properties(height=200)


def gap_per_epoch(gaps: pd.DataFrame, measure: str = "loss") -> alt.Chart:
    """gaps: epoch, split, gap (A minus B)."""
    return alt.Chart(gaps).mark_bar().encode(
        x=alt.X("epoch:O", title="epoch"), y=alt.Y("gap:Q", title=f"A − B {measure}"),
        color=alt.Color("split:N", title="split"), xOffset="split:N",
        tooltip=["epoch", "split", alt.Tooltip("gap:Q", format=".3e")],
    ).properties(height=220)


def weight_distance(distances: pd.DataFrame, measure: str = "l2") -> alt.Chart:
    """distances: epoch, layer, l2, relative, max_abs, cosine. One line per variable."""
    return alt.Chart(distances).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch (0 = initialisation)"), y=alt.Y(f"{measure}:Q", title=f"A vs B {measure}"),
        color=alt.Color("layer:N", title="variable"),
        tooltip=["layer", "epoch", alt.Tooltip(f"{measure}:Q", format=".3e")],
    ).properties(height=280)


def histogram_overlay(values: pd.DataFrame, title: str) -> alt.Chart:
    """values: value, model. Overlaid, semi-transparent histograms of A and B."""
    return alt.Chart(values, title=title).mark_bar(opacity=0.5, binSpacing=0).encode(
        x=alt.X("value:Q", bin=alt.Bin(maxbins=50), title="weight"),
        y=alt.Y("count():Q", stack=None, title="count"), color=_model_color(),
        tooltip=["model", alt.Tooltip("count():Q", title="count")],
    ).properties(height=220)


def histogram(values: pd.DataFrame, field: str, title: str) -> alt.Chart:
    """A single distribution, e.g. A−B per weight or per-sample prediction deltas."""
    return alt.Chart(values, title=title).mark_bar(color=DIFF_COLOR).encode(
        x=alt.X(f"{field}:Q", bin=alt.Bin(maxbins=50), title=field),
        y=alt.Y("count():Q", title="count"), tooltip=[alt.Tooltip("count():Q", title="count")],
    ).properties(height=220)


def scatter_a_vs_b(points: pd.DataFrame) -> alt.Chart:
    """points: a, b, sample, (class). The diagonal is where A and B agree."""
    lo, hi = float(min(points["a"].min(), points["b"].min())), float(max(points["a"].max(), points["b"].max()))
    diagonal = alt.Chart(pd.DataFrame({"a": [lo, hi], "b": [lo, hi]})).mark_line(
        color=DIFF_COLOR, strokeDash=[4, 4]).encode(x="a:Q", y="b:Q")
    dots = alt.Chart(points).mark_circle(size=30, opacity=0.6).encode(
        x=alt.X("a:Q", title="model A"), y=alt.Y("b:Q", title="model B"),
        color=alt.Color("differs:N", title="classes differ", scale=alt.Scale(domain=[False, True],
                                                                              range=["#adb5bd", "#d62728"])),
        tooltip=["sample", alt.Tooltip("a:Q", format=".4f"), alt.Tooltip("b:Q", format=".4f"), "differs"],
    )
    return (diagonal + dots).properties(height=320)


def decision_map(grid: pd.DataFrame, field: str, title: str) -> alt.Chart:
    """grid: x1, x2, <field> over the input plane: a heat map (probability, or where the classes differ)."""
    scale = alt.Scale(scheme="redblue", domain=[0, 1]) if field != "disagree" else alt.Scale(
        domain=[False, True], range=["#f8f9fa", "#d62728"])
    cells = alt.Chart(grid).mark_rect().encode(
        x=alt.X("x1:O", axis=None), y=alt.Y("x2:O", axis=None, sort="descending"),
        color=alt.Color(f"{field}:{'N' if field == 'disagree' else 'Q'}", scale=scale, title=field),
        tooltip=[alt.Tooltip("x1:Q", format=".2f"), alt.Tooltip("x2:Q", format=".2f"), field],
    )
    return cells.properties(title=title, width=260, height=260)


def attribution_shares(shares: pd.DataFrame) -> alt.Chart:
    """shares: factor, measure, share (1 = the whole A-B gap)."""
    return alt.Chart(shares).mark_bar().encode(
        x=alt.X("share:Q", title="share of the A–B gap", axis=alt.Axis(format="%")),
        y=alt.Y("factor:N", title=None), color=alt.Color("measure:N", title="gap in"), yOffset="measure:N",
        tooltip=["factor", "measure", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=alt.Step(18))


def noise_floor(noise: pd.DataFrame, pair_gap: float) -> alt.Chart:
    """noise: run, gap (A against A with another seed); the rule is the A-B gap."""
    dots = alt.Chart(noise).mark_circle(size=80, color=DIFF_COLOR).encode(
        x=alt.X("gap:Q", title="prediction RMS gap to A"), y=alt.Y("run:N", title=None),
        tooltip=["run", alt.Tooltip("gap:Q", format=".3e")])
    rule = alt.Chart(pd.DataFrame({"gap": [pair_gap], "label": ["A vs B"]})).mark_rule(
        color="#d62728", strokeWidth=2).encode(x="gap:Q", tooltip=["label", alt.Tooltip("gap:Q", format=".3e")])
    return (dots + rule).properties(height=alt.Step(24))


def staircase(steps: pd.DataFrame) -> alt.Chart:
    """steps: step, aligned, prediction (gap to A after aligning that factor too)."""
    return alt.Chart(steps).mark_bar(color=DIFF_COLOR).encode(
        x=alt.X("aligned:N", sort=None, title="factor aligned to A (cumulative)"),
        y=alt.Y("prediction:Q", title="prediction RMS gap to A"),
        tooltip=["step", "aligned", alt.Tooltip("prediction:Q", format=".3e"), "bitwise_equal"],
    ).properties(height=260)


def forecast(series: pd.DataFrame) -> alt.Chart:
    """series: step, source (truth, A, B), value."""
    colors = alt.Scale(domain=["truth", "A", "B"], range=["#212529", "#1f77b4", "#ff7f0e"])
    return alt.Chart(series).mark_line().encode(
        x=alt.X("step:Q", title="test step"), y=alt.Y("value:Q", title="value"),
        color=alt.Color("source:N", scale=colors, title=""),
        strokeDash=alt.condition(alt.datum.source == "truth", alt.value([1, 0]), alt.value([5, 3])),
        tooltip=["source", "step", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=320)
