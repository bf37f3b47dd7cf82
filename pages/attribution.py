"""Why they differ: each factor's share of the gap, the seed-noise floor, run it twice."""

import pandas as pd
import streamlit as st

from core import analysis
from core.sweep import MAX_SEEDS
from core.factors import factor, parse_pair
from ui import charts, run
from ui.page import result_or_stop
from ui.text import plain

result = result_or_stop()
pair = parse_pair(result.summary["config"])
st.header("Attribution")
if stopped := run.stopped_batch():
    st.info(f"{stopped} stopped. The runs that had finished are kept and will not be trained again.")
seeds = st.number_input("Other seeds for the noise floor", min_value=1, max_value=MAX_SEEDS - 1, value=3,
                        help="A is trained again with this many other seeds (the Sweep page draws the same "
                             "seed noise beside a factor's values).")
plan = {**analysis.attribution_plan(pair), **analysis.noise_plan(pair, seeds), **analysis.run_twice_plan(pair)}
says, epochs = run.batch_cost(plan, result.summary["data"]["fingerprint"])
differing = len(pair.b_differs)
swaps = {0: "", 1: ", A and B with the one differing factor swapped"}.get(
    differing, f", A and B with one factor swapped for each of the {differing} differing factors")
st.write(f"The analysis plans A and B{swaps}, A with {seeds} other {'seed' if seeds == 1 else 'seeds'}, and A once "
         f"more: {says}.")
key = f"analysis:{result.summary['key']}:{seeds}"
if st.button("Run the analysis", type="primary") and \
        (done := run.run_batch(pair, plan, "Analysis", epochs)) is not None:
    st.session_state[key] = done

outcomes = st.session_state.get(key)
if outcomes is None:
    st.stop()

st.subheader("Which factor caused how much")
attribution = analysis.attribution(pair, {k: outcomes[k] for k in analysis.attribution_plan(pair)})
if "error" in attribution:
    st.error(plain(attribution["error"]))
elif not attribution["factors"]:
    st.write("A and B differ in no factor: any difference is what running twice gives (below).")
elif len(attribution["factors"]) == 1:  # a share of 100% by construction explains nothing
    st.write(f"B differs from A in one factor, {factor(attribution['factors'][0]['factor']).label}, so it accounts for "
             "the whole difference by definition. How it acts is the Overview's diagnosis: "
             + (plain(result.summary["diagnosis"]["sentence"], limit=2000) if result.summary.get("diagnosis")
                else "train the pair again to see it."))
else:
    shares = pd.DataFrame([{"factor": factor(f["factor"]).label, "measure": measure,
                            "share": f[f"{measure}_share"]}
                           for f in attribution["factors"] for measure in ("prediction", "weights")])
    st.altair_chart(charts.attribution_shares(shares.dropna()), width="stretch")
    for name, epoch in attribution["diverged"].items():
        st.warning(plain(f"{name} diverged at epoch {epoch} (its loss became non-finite): the differences to it "
                         "are not finite, so the shares that need them are left out."))
    for measure, interacts in attribution["interacts"].items():
        if interacts:
            total = shares[shares["measure"] == measure]["share"].sum()
            st.warning(f"The shares of the {charts.SHARE_MEASURES[measure]} add up to {total:.0%}, not 100%: "
                       "the factors interact.")

st.subheader("Do A and B differ more than seed noise?")
noise = analysis.noise_floor(pair, {k: outcomes[k] for k in analysis.noise_plan(pair, seeds)},
                             result.summary["compare"]["prediction_rms_delta"])
if "error" in noise:
    st.error(plain(noise["error"]))
else:
    seeds_gap = pd.DataFrame({"run": list(noise["noise"]), "gap": list(noise["noise"].values())})
    st.altair_chart(charts.noise_floor(seeds_gap, noise["gap"]), width="stretch")
    for name, epoch in noise["diverged"].items():
        st.warning(plain(f"{name} diverged at epoch {epoch} (its loss became non-finite) and is left out."))
    if noise["within_noise"] is None:
        st.write("The A vs B difference itself is not finite (a run diverged), so it cannot be set against seed "
                 "noise.")
    elif noise["within_noise"]:
        st.write(f"Within seed noise: the {charts.GAP['rms']} between A and B ({noise['gap']:.3g}) is no larger "
                 f"than the largest one between A and A with another seed ({noise['max']:.3g}).")
    else:
        st.write(f"The {charts.GAP['rms']} between A and B is {noise['ratio']:.1f}× the median seed noise "
                 f"({noise['gap']:.3g} against {noise['median']:.3g}).")

st.subheader("Run it twice")
twice = analysis.run_twice({k: outcomes[k] for k in analysis.run_twice_plan(pair)})
if "error" in twice:
    st.error(plain(twice["error"]))
elif twice["bitwise_identical"]:
    st.write("A trained twice in fresh processes is bitwise identical.")
else:
    st.write(f"A trained twice splits at epoch {twice['first_divergent_epoch']} in "
             f"{', '.join(twice['variables']) or 'the predictions'}.")
if "settings" in twice:
    st.dataframe(pd.DataFrame([{"setting": k, "A": str(v)} for k, v in twice["settings"].items()]), hide_index=True)

st.subheader("Alignment staircase")
if "error" in attribution or "error" in twice:
    st.stop()
if pair.same_process and not pair.b_differs:
    st.write("A and B differ in no factor, only in being built one after the other in one process: there is "
             "nothing to align step by step. The Overview's diagnosis says what the second model draws.")
    st.stop()
order = analysis.staircase_order(attribution)
steps_plan = analysis.staircase_plan(pair, order)
says, epochs = run.batch_cost(steps_plan, result.summary["data"]["fingerprint"])
st.write(f"Starting from B, align one factor at a time to A, largest share first: {says}.")
stairs_key = f"{key}:staircase"
if st.button("Run the staircase") and (done := run.run_batch(pair, steps_plan, "Staircase", epochs)) is not None:
    st.session_state[stairs_key] = done
if stairs_key in st.session_state:
    stairs = analysis.staircase(order, st.session_state[stairs_key], twice)
    if "error" in stairs:
        st.error(plain(stairs["error"]))
    else:
        st.altair_chart(charts.staircase(pd.DataFrame(stairs["steps"])), width="stretch")
        for name, epoch in stairs["diverged"].items():
            st.warning(plain(f"{name} diverged at epoch {epoch} (its loss became non-finite): its difference to A "
                             "is not finite."))
        if stairs["lands_on_run_twice_level"]:
            st.write("With every factor aligned the last step lands where running A twice lands.")
        elif not stairs["diverged"]:
            st.warning("With every factor aligned the last step still differs from A by more than running A "
                       "twice does: something differs that the factor list does not model.")
