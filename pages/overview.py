"""Overview: the verdict, the numbers side by side, what differs, and the settings in effect."""

import json

import streamlit as st

from ui.page import download, result_or_stop
from ui.text import plain

result = result_or_stop()
# Imported after the no-result stop: every first visit lands here, and draws sooner
# without loading pandas and Altair.
from ui import charts, tables  # noqa: E402

s = result.summary

st.header("Overview")
if diagnosis := s.get("diagnosis"):
    st.markdown(f"**{diagnosis['name']}.** {plain(diagnosis['sentence'], limit=2000)}")
    with st.expander("The evidence, measured by this pair's runs"):
        st.markdown("\n".join(f"- {plain(line, limit=2000)}" for line in diagnosis["evidence"]))
if s["config"].get("same_process"):  # the article's Example 1: the code beside what its run measured
    from core.export import same_process_code
    from core.factors import parse_pair

    code, facts = st.columns([3, 2])
    code.code(same_process_code(parse_pair(s["config"])), language="python")
    shared = s["b"]["effective"]["same_process"]
    facts.markdown("\n".join([
        "Measured in that process:",
        *(f"- `{built}` built a `{cls}`" for built, cls in zip(shared["built_with"], shared["classes"])),
        f"- one class for both: **{'yes' if shared['same_class'] else 'no'}**",
        "- optimizer names: " + ", ".join(f"`{s[m]['effective']['optimizer']['name']}`" for m in "ab"),
        f"- tf.keras is `{s['a']['effective']['tf.keras is']}` in this TensorFlow"]))
for sentence in tables.verdict(result):
    st.markdown(f"- {sentence}")

c = s["compare"]
# In a row that wraps, each metric as wide as its label: four equal columns cut the labels short on a projector's
# 1024 pixels.
metrics = st.container(horizontal=True, gap="medium")
if s["data"]["task"] == "classification":
    metrics.metric("Test predictions that change class", f"{c['disagreements']} of {c['compared_samples']}",
                   width="content")
else:
    metrics.metric("RMS prediction gap", tables.number(c["prediction_rms_delta"]), width="content")
metrics.metric("Largest prediction gap", tables.number(c["prediction_max_abs_delta"]), width="content")
first = c["first_divergent_epoch"]
metrics.metric("Weights first differ at epoch", "never" if first is None else str(first), width="content")
metrics.metric("Final weight distance (L2)", tables.number(c["per_epoch"][-1]["l2"]), width="content")

st.subheader("Final metrics")
# Static tables: the page every Run lands on draws without loading the interactive data grid.
st.table(tables.final_metrics(result), hide_index=True)

st.subheader("What differs")
differs = tables.what_differs(s["config"])
if differs.empty:
    st.write("Nothing in the config: A and B are the same setup, each trained in its own fresh process.")
else:
    st.table(differs, hide_index=True)

st.subheader("Divergence at a glance")
distances = tables.distances(result)
st.altair_chart(charts.weight_distance(distances[distances["layer"] == "all weights"]), width="stretch")

st.subheader("Environment")
st.caption(s["data"]["description"] + (" · served from the cache" if result.cached else ""))
if note := tables.plain_script_note(s["config"]):
    st.markdown(note)
st.table(tables.environment(result), hide_index=True)

st.subheader("Downloads")


def histories_csv() -> str:
    history = tables.history(result)
    return history.merge(tables.gaps(history), on=["epoch", "split"], how="left").to_csv(index=False)


left, middle, right = st.columns(3)
download(left, "Histories and gaps (CSV)", histories_csv, "histories.csv", "text/csv")
download(middle, "Result (JSON)", lambda: json.dumps(s, indent=1), "result.json", "application/json")
download(right, "Pair config (JSON)", lambda: json.dumps(s["config"], indent=2), "pair.json", "application/json")
download(st, "Prediction deltas (CSV)", lambda: tables.predictions(result).to_csv(index=False), "deltas.csv",
         "text/csv")
