"""Pure chart builders: data frame in, Altair chart out (no Streamlit here); the live loss chart is a spec
whose rows come with each redraw.

The frames come from `ui.tables`, which turns a PairResult into tidy data.
Blue and orange mean model A and model B, in every chart and for nothing else; A is
drawn wide and pale with hollow dots, B narrow on top with small filled dots, so
where the two coincide B runs inside A and both stay visible.
"""

from __future__ import annotations

import functools
import math

import altair as alt
import numpy as np
import pandas as pd

from core.factors import factor

MODELS = ["A", "B"]
MODEL_RANGE = ["#1f77b4", "#ff7f0e"]
MODEL_COLORS = alt.Scale(domain=MODELS, range=MODEL_RANGE)
# Every other category (split, variable, measure): neither blue nor orange, nor the red that marks A vs B.
CATEGORY_COLORS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f"]
SHAPES = ["circle", "square", "triangle-up", "diamond", "cross"]  # with 6 colours: 30 variables before a repeat
DIFF_COLOR = "#6c757d"
PAIR_COLOR = "#d62728"  # A against B, where other marks are A against something else
SPLITS = alt.Scale(domain=["train", "test"], range=[[1, 0], [6, 4]])

# One meaning per word, for every title: predictions have a "difference", weights a "distance".
GAP = {
    "rms": "RMS difference of test predictions",  # √mean((A − B)²) over every output of every test sample
    "largest": "largest difference of test predictions",  # max |A − B| over outputs (and samples)
    "l2": "L2 distance of all weights",  # ‖A − B‖ over every element of every variable
}
WEIGHT_MEASURES = {
    "l2": "L2 distance ‖A − B‖",
    "relative": "relative L2 distance ‖A − B‖ / ‖A‖",
    "max_abs": "largest |A − B| of one weight",
    "cosine": "cosine similarity of A and B (1 = same direction)",
}
LOG_DECADES = 2  # values that span more than this many decades get a log axis by default
EPOCH_AXIS = alt.Axis(format="d", tickMinStep=1)  # whole epochs, never 1.5


def _model_color(legend: alt.Legend | None = None) -> alt.Color:
    return alt.Color("model:N", scale=MODEL_COLORS, title="model", legend=legend or alt.Legend())


def _line_look(field: str, domain: list, colors: list, widths: list, opacities: list, title: str) -> dict:
    """Colour, width and opacity per category, in one legend that shows all three as a stroke."""
    legend = alt.Legend(symbolType="stroke", symbolSize=400)
    return {channel: encoding(f"{field}:N", scale=alt.Scale(type="ordinal", domain=domain, range=values), title=title,
                              legend=legend)
            for channel, encoding, values in (("color", alt.Color, colors), ("strokeWidth", alt.StrokeWidth, widths),
                                              ("opacity", alt.Opacity, opacities))}


MODEL_LINES = _line_look("model", MODELS, MODEL_RANGE, [5, 1.5], [0.45, 1.0], "model")  # A wide and pale, B narrow
MODEL_DOTS = {"A": {"filled": False, "size": 70, "strokeWidth": 2}, "B": {"filled": True, "size": 22}}


def _model_lines(base: alt.Chart, x: alt.X, y: alt.Y, tooltip: list, **encodings) -> alt.LayerChart:
    """A's line and dots, then B's on top (layer order is drawing order), from one shared data set."""
    layers = []
    for model in MODELS:
        one = base.transform_filter(alt.datum.model == model)
        layers.append(one.mark_line().encode(x=x, y=y, tooltip=tooltip, **MODEL_LINES, **encodings))
        layers.append(one.mark_point(opacity=1, **MODEL_DOTS[model]).encode(
            x=x, y=y, color=MODEL_LINES["color"], tooltip=tooltip))
    return alt.layer(*layers)


def spans_decades(values: pd.Series, decades: float = LOG_DECADES) -> bool:
    """Whether the finite positive values span more than `decades` powers of ten (and none is negative)."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    positive = v[v > 0]
    return bool(len(positive) and not (v < 0).any() and positive.max() / positive.min() > 10 ** decades)


def _log_floor(values: pd.Series) -> float:
    """A power of ten a decade below the smallest positive value: where a log axis draws 0."""
    smallest = float(values[values > 0].min())
    return 10.0 ** (math.floor(math.log10(smallest)) - 1)


def loss_curves(history: pd.DataFrame, measure: str = "loss", log_scale: bool = False) -> alt.LayerChart:
    """history: epoch, model, split, loss, metric. Colour and width = model, dash = split."""
    y = alt.Y(f"{measure}:Q", title=measure, scale=alt.Scale(type="log" if log_scale else "linear"))
    dash = alt.StrokeDash("split:N", scale=SPLITS, title="split",
                          legend=alt.Legend(symbolType="stroke", symbolSize=900, symbolStrokeWidth=2,
                                            symbolStrokeColor=DIFF_COLOR))
    tooltip = ["model", "split", "epoch", alt.Tooltip(f"{measure}:Q", format=".6g")]
    return _model_lines(alt.Chart(history), alt.X("epoch:Q", title="epoch", axis=EPOCH_AXIS), y, tooltip,
                        strokeDash=dash).properties(height=320)


@functools.cache
def live_loss_spec() -> dict:
    """The live loss chart as a Vega-Lite spec without its rows (epoch, model, loss, as they arrive during
    training), which `st.vega_lite_chart(rows, spec)` adds at each redraw. Built once per process: an Altair
    chart took ~0.1 s to build and validate at every redraw, on the thread that follows the training. (Streamlit
    copies a spec before it adds to it, so the one kept here stays as built.)"""
    chart = _model_lines(alt.Chart(alt.Data(name="rows")), alt.X("epoch:Q", title="epoch", axis=EPOCH_AXIS),
                         alt.Y("loss:Q", title="train loss"), ["model:N", "epoch:Q", "loss:Q"]).properties(height=200)
    spec = chart.to_dict()
    del spec["data"]  # the rows come with each redraw, as the chart's data
    return spec


def gap_per_epoch(gaps: pd.DataFrame, measure: str = "loss") -> alt.Chart:
    """gaps: epoch, split, gap (A minus B)."""
    return alt.Chart(gaps).mark_bar().encode(
        x=alt.X("epoch:O", title="epoch"), y=alt.Y("gap:Q", title=f"A − B {measure}"),
        color=alt.Color("split:N", title="split", scale=alt.Scale(domain=SPLITS.domain, range=CATEGORY_COLORS[:2])),
        xOffset=alt.XOffset("split:N", sort=SPLITS.domain),
        tooltip=["epoch", "split", alt.Tooltip("gap:Q", format=".3e")],
    ).properties(height=220)


def weight_distance(distances: pd.DataFrame, measure: str = "l2", log_scale: bool | None = None) -> alt.Chart:
    """distances: epoch, layer, l2, relative, max_abs, cosine. One line per variable.

    log_scale None: log where the values span decades. A log axis cannot show 0, so epochs
    where A and B are equal sit on a labelled "bitwise equal" line a decade below the rest.
    """
    values = distances[measure]
    wanted = spans_decades(values) if log_scale is None else log_scale
    log = wanted and measure != "cosine" and bool((values > 0).any())  # a similarity near 1 has no decades
    x = alt.X("epoch:Q", title="epoch (0 = initialisation)", axis=EPOCH_AXIS)
    y = alt.Y(f"{measure}:Q", title=WEIGHT_MEASURES[measure], scale=alt.Scale(type="log" if log else "linear"),
              axis=alt.Axis(format="~e") if log else alt.Axis())
    variable = {"color": alt.Color("layer:N", title="variable", scale=alt.Scale(range=CATEGORY_COLORS)),
                "shape": alt.Shape("layer:N", title="variable", scale=alt.Scale(range=SHAPES))}
    lines = alt.Chart(distances).mark_line(point=True).encode(
        x=x, y=y, tooltip=["layer", "epoch", alt.Tooltip(f"{measure}:Q", format=".3e")], **variable)
    zeros = distances[values == 0]
    if not log or zeros.empty:
        return lines.properties(height=280)
    lines = lines.transform_filter(alt.datum[measure] > 0)  # a 0 in a log scale's domain breaks the whole axis
    floor = _log_floor(values)
    equal = alt.Chart(zeros).mark_point(filled=True, size=60).encode(
        x=x, y=alt.datum(floor), tooltip=["layer", "epoch", alt.Tooltip(f"{measure}:Q", title="bitwise equal")],
        **variable)
    baseline = alt.Chart(pd.DataFrame({"epoch": [distances["epoch"].min()], "label": ["bitwise equal (0)"]}))
    rule = baseline.mark_rule(color=DIFF_COLOR, strokeDash=[2, 3]).encode(y=alt.datum(floor))
    label = baseline.mark_text(align="left", baseline="bottom", dx=4, dy=-4, color=DIFF_COLOR).encode(
        x="epoch:Q", y=alt.datum(floor), text="label:N")
    return alt.layer(lines, equal, rule, label).properties(height=280)


def histogram_overlay(values: pd.DataFrame, title: str) -> alt.LayerChart:
    """values: value, model. A's histogram filled and pale, B's outlined on top: equal bins show both."""
    binned = alt.Chart(values).transform_bin(["start", "end"], "value", bin=alt.Bin(maxbins=50)) \
        .transform_aggregate(count="count()", groupby=["start", "end", "model"])  # one set of bins for A and B
    return alt.layer(*[binned.transform_filter(alt.datum.model == model).mark_bar(binSpacing=0, **style).encode(
        x=alt.X("start:Q", bin="binned", title="weight"), x2="end:Q", y=alt.Y("count:Q", title="count"),
        color=_model_color(), stroke=_model_color(), tooltip=["model", "count:Q"])
        for model, style in zip(MODELS, ({"fillOpacity": 0.4}, {"fillOpacity": 0, "strokeWidth": 1.5}))],
        title=title).properties(height=220)


def histogram(values: pd.DataFrame, field: str, title: str, axis_title: str | None = None) -> alt.Chart:
    """A single distribution, e.g. A−B per weight or per-sample prediction deltas."""
    return alt.Chart(values, title=title).mark_bar(color=DIFF_COLOR).encode(
        x=alt.X(f"{field}:Q", bin=alt.Bin(maxbins=50), title=axis_title or field),
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
                                                                              range=["#adb5bd", PAIR_COLOR])),
        tooltip=["sample", alt.Tooltip("a:Q", format=".4f"), alt.Tooltip("b:Q", format=".4f"), "differs"],
    )
    return (diagonal + dots).properties(height=320)


def decision_map(grid: pd.DataFrame, field: str, title: str) -> alt.Chart:
    """grid: x1, x2, <field> over the input plane: a heat map (probability, or where the classes differ)."""
    scale = alt.Scale(scheme="redblue", domain=[0, 1]) if field != "disagree" else alt.Scale(
        domain=[False, True], range=["#f8f9fa", PAIR_COLOR])
    cells = alt.Chart(grid).mark_rect().encode(
        x=alt.X("x1:O", axis=None), y=alt.Y("x2:O", axis=None, sort="descending"),
        color=alt.Color(f"{field}:{'N' if field == 'disagree' else 'Q'}", scale=scale, title=field),
        tooltip=[alt.Tooltip("x1:Q", format=".2f"), alt.Tooltip("x2:Q", format=".2f"), field],
    )
    return cells.properties(title=title, width=260, height=260)


SHARE_MEASURES = {"prediction": GAP["rms"], "weights": f"{GAP['l2']} after the last epoch"}  # core.analysis.gap


def attribution_shares(shares: pd.DataFrame) -> alt.Chart:
    """shares: factor, measure (prediction, weights), share (1 = the whole A-B difference)."""
    shown = shares.assign(**{"measured as": shares["measure"].map(SHARE_MEASURES)})
    domain = list(SHARE_MEASURES.values())
    return alt.Chart(shown).mark_bar().encode(
        x=alt.X("share:Q", title="share of the difference between A and B", axis=alt.Axis(format="%")),
        y=alt.Y("factor:N", title=None),
        color=alt.Color("measured as:N", title="difference measured as",
                        scale=alt.Scale(domain=domain, range=CATEGORY_COLORS[:len(domain)]),
                        legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=400)),
        yOffset=alt.YOffset("measured as:N", sort=domain),
        tooltip=["factor", "measured as:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=alt.Step(18))


def noise_floor(noise: pd.DataFrame, pair_gap: float | None) -> alt.LayerChart:
    """noise: run, gap (A against A with another seed); the labelled rule is A against B."""
    x = alt.X("gap:Q", title=f"{GAP['rms']} to A")
    dots = alt.Chart(noise).mark_circle(size=80, color=DIFF_COLOR).encode(
        x=x, y=alt.Y("run:N", title=None), tooltip=["run", alt.Tooltip("gap:Q", format=".3e")])
    pair = alt.Chart(pd.DataFrame({"gap": [pair_gap], "label": ["A vs B"]}))
    rule = pair.mark_rule(color=PAIR_COLOR, strokeWidth=2).encode(
        x=x, tooltip=["label", alt.Tooltip("gap:Q", format=".3e")])
    label = pair.mark_text(color=PAIR_COLOR, align="left", baseline="top", dx=5, dy=3, fontWeight="bold").encode(
        x=x, y=alt.value(0), text="label:N")
    title = alt.TitleParams("Seed noise against the A vs B difference", anchor="start", subtitle=[
        "grey dots: A against A trained with another seed", "red line: A against B"])
    return alt.layer(dots, rule, label, title=title).properties(height=alt.Step(24))


def staircase(steps: pd.DataFrame) -> alt.LayerChart:
    """steps: step, aligned (factor path; none at step 0), prediction (difference to A), bitwise_equal."""
    shown = steps.assign(
        label=["B as is" if s == 0 else f"+ {factor(path).label}" for s, path in zip(steps["step"], steps["aligned"])],
        note=["bitwise equal" if equal else (f"{p:.3g}" if np.isfinite(p) else "not finite")
              for equal, p in zip(steps["bitwise_equal"], steps["prediction"].astype(float))])
    base = alt.Chart(shown).encode(
        x=alt.X("label:N", sort=None, title="aligned to A, one factor more per step", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("prediction:Q", title=[GAP["rms"], "to A"]),
        tooltip=["step", "label", alt.Tooltip("prediction:Q", format=".3e"), "bitwise_equal"])
    bars = base.mark_bar(color=DIFF_COLOR)
    notes = base.mark_text(baseline="bottom", dy=-3, color=DIFF_COLOR).encode(text="note:N")  # light and dark
    return alt.layer(bars, notes).properties(height=260)


def forecast(series: pd.DataFrame) -> alt.LayerChart:
    """series: step, source (truth, A, B), value. The truth thin and grey (light and dark themes), A and B as in
    every model chart."""
    x, y = alt.X("step:Q", title="test step"), alt.Y("value:Q", title="value")
    sources = ["truth", *MODELS]
    look = _line_look("source", sources, [DIFF_COLOR, *MODEL_RANGE], [1.5, 5, 1.5], [1.0, 0.45, 1.0], "")
    tooltip = ["source", "step", alt.Tooltip("value:Q", format=".4f")]
    base = alt.Chart(series)
    return alt.layer(*[base.transform_filter(alt.datum.source == source).mark_line().encode(
        x=x, y=y, tooltip=tooltip, **look) for source in sources]).properties(height=320)


def sweep_gaps(rows: pd.DataFrame, values: pd.DataFrame, band: dict, title: str, log_x: bool) -> alt.LayerChart:
    """rows: label, value, seed, prediction (one per value and seed); values: label, value, prediction_median,
    prediction_low, prediction_high (one per value); band: the seed-noise band's low, median, high."""
    x = alt.X("value:Q", title=title, scale=alt.Scale(type="log"), axis=alt.Axis(format="~e")) if log_x else \
        alt.X("label:N", title=title, sort=list(values["label"]), axis=alt.Axis(labelAngle=0))
    y = alt.Y("prediction:Q", title=[GAP["rms"], "to A at the same seed"])
    layers = []
    if band["n"]:
        noise = pd.DataFrame([{"low": band["low"], "high": band["high"], "median": band["median"],
                               "label": "seed noise"}])
        layers += [alt.Chart(noise).mark_rect(color=DIFF_COLOR, opacity=0.2).encode(
                       y=alt.Y("low:Q"), y2="high:Q", tooltip=[alt.Tooltip("low:Q", format=".3e"),
                                                               alt.Tooltip("high:Q", format=".3e")]),
                   alt.Chart(noise).mark_rule(color=DIFF_COLOR, strokeDash=[4, 3]).encode(
                       y="median:Q", tooltip=["label", alt.Tooltip("median:Q", format=".3e")])]
    medians = values.dropna(subset=["prediction_median"]).rename(columns={"prediction_median": "prediction"})
    layers += [
        alt.Chart(rows).mark_circle(color=DIFF_COLOR, size=40, opacity=0.7).encode(
            x=x, y=y, tooltip=["label", "seed", alt.Tooltip("prediction:Q", format=".3e")]),
        alt.Chart(medians).mark_rule(color=PAIR_COLOR, opacity=0.5).encode(
            x=x, y=alt.Y("prediction_low:Q"), y2="prediction_high:Q"),
        alt.Chart(medians).mark_line(color=PAIR_COLOR, point=alt.OverlayMarkDef(color=PAIR_COLOR)).encode(
            x=x, y=y, tooltip=["label", alt.Tooltip("prediction:Q", title="median", format=".3e"),
                               alt.Tooltip("prediction_low:Q", title="lowest", format=".3e"),
                               alt.Tooltip("prediction_high:Q", title="highest", format=".3e")]),
    ]
    subtitle = ["red: the median over seeds, with the lowest and highest; grey dots: each seed",
                "grey band: seed noise, A against A with another seed (dashed: its median)"]
    return alt.layer(*layers, title=alt.TitleParams("The gap against the value, beside seed noise", anchor="start",
                                                    subtitle=subtitle))
