"""Sweep: one factor of A over several values, each over several seeds, against the seed-noise band."""

import threading

import pandas as pd
import streamlit as st

from core import analysis, data, sweep
from core.config import ConfigError
from core.factors import Number, factor, format_value
from ui import charts, run
from ui.page import framed
from ui.text import plain

SEEDS_ONLY = "(seeds only)"
RESULT = "sweep.result"  # (the pair, the sweep, its result): what the page draws

framed()
st.header("Sweep")
if stopped := run.stopped_batch():
    st.info(f"{stopped} stopped. The runs that had finished are kept and will not be trained again; what they "
            "measured is drawn below.")
pair = st.session_state.get(run.SIDEBAR_PAIR)
if pair is None:
    st.info("A value in the sidebar is out of range: set up A there first.")
    st.stop()
st.write(f"Starts from **A** as the sidebar sets it up ({pair.a.training.epochs} epochs). For each seed, A is "
         "trained, and A with the factor at each value" + (", from that seed's initial weights" if
                                                          pair.b_starts_from_a_init else "") +
         "; the gap is how far each ends from A at the same seed. Seed noise is how far A ends from A with "
         "another seed.")

sweepable = sweep.sweepable(pair.a.engine.name)
differs = [path for path, _ in pair.b_differs if path in sweepable]
left, right = st.columns([2, 1])
path = left.selectbox("Factor", [SEEDS_ONLY, *sweepable], index=1 + sweepable.index(
    differs[0] if differs else "optimizer.epsilon"), format_func=lambda p: p if p == SEEDS_ONLY else
                      f"{factor(p).label} ({p})")
seeds = right.number_input("Seeds per value", min_value=sweep.MIN_SEEDS, max_value=sweep.MAX_SEEDS, value=5)
values = []
try:
    if path != SEEDS_ONLY:
        allowed = factor(path).allowed
        if isinstance(allowed, Number):
            def within(value: float) -> float | int:  # a default inside the factor's range, as people write it
                value = min(max(value, allowed.lo), allowed.hi)
                return int(round(value)) if allowed.integer else float(f"{value:.6g}")

            # by default around A's value: four decades up to three down (log-scale), or twice to half
            start_default = within(pair.a.get(path) * (10 ** 4 if allowed.log else 2))
            stop_default = within(pair.a.get(path) / (10 ** 3 if allowed.log else 2))
            a, b, c = st.columns(3)
            shown = None if allowed.integer else "%g"
            start = a.number_input("From", value=start_default, format=shown)
            stop = b.number_input("To", value=stop_default, format=shown)
            count = c.number_input("Values", min_value=1, max_value=sweep.MAX_VALUES, value=8 if allowed.log else 5)
            values = sweep.value_range(path, start, stop, int(count))
        else:
            values = st.multiselect("Values", list(allowed.options), default=list(allowed.options)[:3])
    plan_of = sweep.make_sweep(pair, None if path == SEEDS_ONLY else path, values, int(seeds))
    ds = data.load(pair.data)
except ConfigError as e:
    st.error(plain(str(e)))
    st.stop()

plan = sweep.sweep_plan(pair, plan_of)
says, epochs = run.batch_cost(plan, ds.fingerprint())
shown = ", ".join(format_value(plan_of.path, v) for v in plan_of.values)
st.write((f"Values: {shown}. " if plan_of.values else "") + f"{sweep.describe(plan_of)} = {len(plan)} runs (a "
         f"value equal to A's is A's run): {says}.")
if st.button("Run the sweep", type="primary"):
    outcomes = run.run_batch(pair, plan, "Sweep", epochs)
    if outcomes is not None:
        st.session_state[RESULT] = (pair, plan_of, sweep.sweep_result(pair, plan_of, outcomes))
elif stopped:  # what finished before Stop, from the cache (nothing is trained: the batch starts cancelled)
    cancelled = threading.Event()
    cancelled.set()
    st.session_state[RESULT] = (pair, plan_of, sweep.sweep_result(pair, plan_of, analysis.execute(
        pair, plan, cancel=cancelled)))

if RESULT not in st.session_state:
    st.stop()
drawn_pair, drawn, result = st.session_state[RESULT]
if (drawn_pair, drawn) != (pair, plan_of):
    st.info("This sweep was drawn for other settings than the ones above: press **Run the sweep** to train these.",
            icon=":material/history:")
st.markdown(f"**{plain(sweep.verdict(drawn, result))}**")
if result["missing"]:
    st.warning(f"{len(result['missing'])} of the planned runs did not finish (stopped or failed) and are left out.")
for name, epoch in result["diverged"].items():
    st.warning(plain(f"{name} diverged at epoch {epoch} (its loss became non-finite) and is left out."))
if drawn.path is not None and result["rows"]:
    labels = {v["value"]: v["label"] for v in result["values"]}
    rows = pd.DataFrame(result["rows"]).assign(label=lambda f: f["value"].map(labels))
    swept = factor(drawn.path)
    log_x = isinstance(swept.allowed, Number) and swept.allowed.log
    st.altair_chart(charts.sweep_gaps(rows, pd.DataFrame(result["values"]), result["band"]["prediction"],
                                      f"{swept.label} ({drawn.path})", log_x), width="stretch")
    st.dataframe(pd.DataFrame(result["values"])[["label", "prediction_median", "prediction_low", "prediction_high",
                                                  "seeds", "outside_band"]],
                 hide_index=True, column_config={
                     "label": "value", "prediction_median": st.column_config.NumberColumn("median gap", format="%.3g"),
                     "prediction_low": st.column_config.NumberColumn("lowest", format="%.3g"),
                     "prediction_high": st.column_config.NumberColumn("highest", format="%.3g"),
                     "outside_band": "outside the seed noise"})
st.download_button("Download every gap (CSV)", sweep.to_csv(result), "sweep.csv", "text/csv")
