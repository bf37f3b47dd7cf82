"""Why A and B differ: the mechanism, found from the pair's own runs and said in one sentence.

The evidence is measured, never assumed from the config: whether the inputs that
preprocessing hands to training differ (and by how much), which variables differ
before the first step, the first epoch at which the weights split, whether A
trained twice repeats itself ("A again"), and, where both runs use fit's own
shuffle, the same pair with one fixed batch order. The config only names the
factors a mechanism is pinned on once the evidence has ruled the others out.
No Streamlit, no TensorFlow here.
"""

from __future__ import annotations

import numpy as np

from core.batch import Planned
from core.compare import compare_runs
from core.config import PairConfig
from core.engines import FRAMEWORK_NAMES, engine
from core.export import not_reproducible
from core.factors import ENGINE, NUMERICS, OPTIM, PREPROC, SEEDING, TRAIN, factor, format_value

# The mechanisms a diagnosis can name: key -> the name people read.
MECHANISMS = {
    "none": "No difference",
    "preprocessing": "Preprocessing",
    "initial_weights": "Initial weights",
    "nondeterminism": "Nondeterminism",
    "batch_order": "Batch order",
    "update_arithmetic": "Update arithmetic",
    "numerics": "Kernels and numerics",
    "training_draws": "Random draws in training",
    "network": "A different network",
    "several": "Several mechanisms",
}
# Which mechanism a differing factor acts through once inputs and initial weights are equal.
GROUP_MECHANISM = {OPTIM: "update_arithmetic", ENGINE: "update_arithmetic", TRAIN: "batch_order",
                   NUMERICS: "numerics", SEEDING: "training_draws"}
AGAIN, A_FIXED, B_FIXED = "A again", "A, fixed order", "B, fixed order"


def checks_plan(pair: PairConfig) -> dict[str, Planned]:
    """The runs the diagnosis needs besides A and B (each from the run cache when trained before).

    "A again" (A's config in another fresh process) unless B already is that; A and B with
    one fixed batch order when fit's own shuffle is in play and the order is not what differs.
    """
    plan = {}
    if pair.b_differs or pair.same_process:  # (A again, alone in its process, as A was built first in its own)
        plan[AGAIN] = Planned(pair.a, repeat=1)
    orders = {pair.a.training.batch_order, pair.b.training.batch_order}
    if pair.b_differs and "framework" in orders and "training.batch_order" not in dict(pair.b_differs) \
            and not pair.same_process:
        plan[A_FIXED] = Planned(pair.a.with_value("training.batch_order", "fixed"))
        plan[B_FIXED] = Planned(pair.b.with_value("training.batch_order", "fixed"),
                                A_FIXED if pair.b_starts_from_a_init else None)
    return plan


def _split(x: dict, y: dict, task: str) -> dict:
    """Where two finished runs part: the first epoch their weights differ, and whether anything differs."""
    c = compare_runs(x["weights"], y["weights"], x["predictions"], y["predictions"], task,
                     x["recorded_epochs"], y["recorded_epochs"])
    return {"epoch": c["first_divergent_epoch"],
            "identical": c["weights_bitwise_equal"] and c["predictions_bitwise_equal"]}


def _said(split: dict) -> str:
    if split["identical"]:
        return "bitwise identical."
    if split["epoch"] is None:
        return "the same weights after every epoch, other test predictions."
    return f"weights first differ at epoch {split['epoch']}."


def _second_model(pair: PairConfig, a: dict, b: dict, which: str) -> str:
    """Two models built one after the other in one process: what the second draws, and what its run measured."""
    facts = b["effective"]["same_process"]
    once = "nothing is seeded and" if pair.a.seeding.policy == "none" else "the seeds were set once, so"
    sentence = (f"B is the second model built in A's process: {once} B's initializers draw the numbers that come "
                f"after A's, and {which} start elsewhere.")
    if facts["same_class"]:
        sentence += (f" {facts['built_with'][0]} and {facts['built_with'][1]} are the same class here "
                     f"({facts['classes'][0]})")
    else:
        sentence += (f" {facts['built_with'][0]} is {facts['classes'][0]}, {facts['built_with'][1]} is "
                     f"{facts['classes'][1]}")
    oa, ob = a["effective"]["optimizer"], b["effective"]["optimizer"]
    differ = sorted(k for k in oa.keys() | ob.keys() if oa.get(k) != ob.get(k))
    if differ == ["name"]:
        return sentence + f", and the two optimizers differ only in their name ({oa['name']}, {ob['name']})."
    return sentence + f"; the two optimizers' settings differ in {', '.join(differ) or 'nothing'}."


def _inputs(a: dict, b: dict) -> dict:
    ta, tb = a["test_inputs"].astype(np.float64), b["test_inputs"].astype(np.float64)
    with np.errstate(invalid="ignore"):
        gap = float(np.nanmax(np.abs(ta - tb))) if ta.shape == tb.shape and ta.size else None
    return {"differ": a["train_inputs_digest"] != b["train_inputs_digest"] or ta.tobytes() != tb.tobytes(),
            "test_max_abs": gap, "rows": (a["n_train_rows"], b["n_train_rows"])}


def _names(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _factors(pair: PairConfig, paths: list[str], verb: str = "") -> str:
    """"B's epsilon, 1e-08 instead of A's 1e-07, changes": each factor with both values, the verb agreeing."""
    said = " and ".join(f"B's {factor(p).label}, {format_value(p, pair.b.get(p))} instead of A's "
                        f"{format_value(p, pair.a.get(p))}," for p in paths)
    if not verb:
        return said.removesuffix(",")
    if len(paths) > 1:
        verb = verb.removesuffix("s")  # "changes" -> "change"; "gives" -> "give"; "makes" -> "make"
    return f"{said} {verb}"


def _number(value: float | None) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.3g}"


def diagnose(pair: PairConfig, comparison: dict, outcomes: dict[str, dict], task: str) -> dict:
    """{"mechanism", "name", "sentence", "evidence"} for a complete pair.

    `outcomes` holds "a", "b" and the runs of checks_plan(pair); `comparison` is A against B.
    """
    a, b = outcomes["a"], outcomes["b"]
    failed = [name for name, o in outcomes.items() if o["type"] != "result"]
    evidence, paths = [], [p for p, _ in pair.b_differs]
    ea, eb = engine(pair.a.engine.name), engine(pair.b.engine.name)

    def verdict(mechanism: str, sentence: str) -> dict:
        return {"mechanism": mechanism, "name": MECHANISMS[mechanism], "sentence": sentence, "evidence": evidence}

    if failed:
        evidence.append(f"Not measured: {', '.join(failed)} did not finish.")
    inputs = _inputs(a, b)
    first = comparison["first_divergent_epoch"]
    initial = comparison["per_epoch"][0] if comparison["per_epoch"] and comparison["per_epoch"][0]["epoch"] == 0 \
        else None
    init_differs = [n for n, d in (initial or {"layers": {}})["layers"].items() if d["max_abs"] != 0]
    n_vars = len(initial["layers"]) if initial else 0
    evidence.append("Inputs after preprocessing: " + (
        "bitwise equal." if not inputs["differ"] else
        f"differ (test inputs by up to {inputs['test_max_abs']:.3g}; training rows A {inputs['rows'][0]}, "
        f"B {inputs['rows'][1]})." if inputs["test_max_abs"] is not None else "differ."))
    evidence.append("Initial weights: " + (f"differ in {len(init_differs)} of {n_vars} variables "
                                           f"({_names(init_differs)})." if init_differs else "bitwise equal."))
    evidence.append("Weights: " + ("bitwise equal after every epoch." if first is None
                                   else f"first differ at epoch {first}."))
    again = outcomes.get(AGAIN)
    again_split = _split(a, again, task) if again and again["type"] == "result" else None
    if again_split:
        evidence.append(f"A trained again in a fresh process: {_said(again_split)}")
    twin = (outcomes.get(A_FIXED), outcomes.get(B_FIXED))
    twin_split = _split(*twin, task) if None not in twin and all(o["type"] == "result" for o in twin) else None
    if twin_split:
        evidence.append(f"A and B with one fixed batch order: {_said(twin_split)}")

    if comparison["weights_bitwise_equal"] and comparison["predictions_bitwise_equal"]:
        if not paths:
            return verdict("none", "Trained twice, each in a fresh process, A and B are bitwise identical: this "
                                   "setup repeats itself exactly on this machine.")
        return verdict("none", f"A and B are bitwise identical after every epoch: "
                               f"{_factors(pair, paths, 'changes')} no bit of the training or the predictions on "
                               "this machine.")
    if inputs["differ"]:
        how = [p for p in paths if factor(p).group == PREPROC] or paths
        by = f" (by up to {inputs['test_max_abs']:.3g} on the test set)" if inputs["test_max_abs"] else ""
        rows = f", and B trains on {inputs['rows'][1]} rows against A's {inputs['rows'][0]}" \
            if inputs["rows"][0] != inputs["rows"][1] else ""
        then = "the weights still end bitwise equal" if first is None else f"the weights differ from epoch {first}"
        return verdict("preprocessing", f"Preprocessing hands B other numbers before any training: "
                                        f"{_factors(pair, how, 'changes')} the inputs{by}{rows}; {then}.")
    if init_differs:
        which = f"{len(init_differs)} of {n_vars} variables ({_names(init_differs)})"
        if pair.same_process:
            anew = "" if again_split is None or again_split["epoch"] != 0 else (
                " A trained again in another fresh process starts elsewhere too: "
                f"{'; '.join(not_reproducible(pair.a)) or 'a random stream is not seeded'}.")
            return verdict("initial_weights", _second_model(pair, a, b, which) + anew)
        unseeded = not_reproducible(pair.a)
        a_repeats_init = again_split is None or again_split["epoch"] != 0
        if not paths or not a_repeats_init:
            why = "; ".join(unseeded) or "a random stream is not seeded"
            same = "the setup is the same" if not paths else "A trained again also starts elsewhere"
            return verdict("initial_weights", f"A and B start from different weights in {which} although {same}: "
                                              f"{why}, so each fresh process draws new initial values.")
        if "engine.name" in paths:
            return verdict("initial_weights", f"B's engine draws its initial weights from another random stream "
                                              f"({eb.training} against {ea.training}), so {which} differ before the "
                                              "first step.")
        return verdict("initial_weights", f"A and B start from different weights in {which}: "
                                          f"{_factors(pair, paths, 'changes')} what the initialisation draws.")
    if first is None:  # the same weights after every epoch, other predictions
        cause = _factors(pair, paths, "changes") if paths else "something outside the config changes"
        return verdict("numerics", f"A and B take bitwise-identical training steps, yet their test predictions "
                                   f"differ by up to {_number(comparison['prediction_max_abs_delta'])}: {cause} how "
                                   "the forward pass over the test set rounds, not the training.")
    if not paths:
        return verdict("nondeterminism", f"A and B are the same setup with the same initial weights, yet they split "
                                         f"at epoch {first}: the training itself does not repeat here (kernels or "
                                         "threads that sum in a varying order).")
    # A again that starts elsewhere says nothing here: B started from A's own weights.
    if again_split is not None and not again_split["identical"] and again_split["epoch"] != 0:
        return verdict("nondeterminism", f"A trained twice from the same setup already splits at epoch "
                                         f"{again_split['epoch']}: the training itself does not repeat here (kernels "
                                         "or threads that sum in a varying order), so the A–B gap is at least "
                                         "partly that.")
    if twin_split is not None and twin_split["identical"]:
        who = f"{ea.training} and {eb.training}" if "engine.name" in paths else "their shuffles"
        return verdict("batch_order", f"With one fixed batch order A and B are bitwise identical; with fit's own "
                                      f"shuffle they split at epoch {first}: {who} deal the samples into different "
                                      "batches, so from then on the models take different steps.")
    mechanisms = {GROUP_MECHANISM.get(factor(p).group, "network") for p in paths}
    same = "From the same inputs and initial weights"
    if len(mechanisms) > 1:
        return verdict("several", f"{same}, A and B split at epoch {first}; B differs in {len(paths)} factors that "
                                  f"act in different ways ({_factors(pair, paths)}): the Attribution page measures "
                                  "each one's share.")
    mechanism = mechanisms.pop()
    if paths == ["engine.name"] and ea.keras == eb.keras == "keras" and ea.framework != eb.framework:
        last = comparison["per_epoch"][-1]
        frameworks = f"{FRAMEWORK_NAMES[ea.framework]} and on {FRAMEWORK_NAMES[eb.framework]}"
        return verdict("numerics", f"{same} in the same batch order, A and B split at epoch {first}: the same Keras 3 "
                                   f"model code runs on {frameworks}, whose kernels compute the same formulas but "
                                   f"round differently; after epoch {last['epoch']} the weights differ by up to "
                                   f"{_number(last['max_abs'])}.")
    if mechanism == "update_arithmetic" and "engine.name" in paths:
        ops = (f"other {FRAMEWORK_NAMES[ea.framework]} ops" if ea.framework == eb.framework else
               f"{FRAMEWORK_NAMES[eb.framework]}'s ops instead of {FRAMEWORK_NAMES[ea.framework]}'s")
        return verdict(mechanism, f"{same} in the same batch order, A and B split at epoch {first}: B's training "
                                  f"step is other code ({eb.training} against {ea.training}), which computes the "
                                  f"loss, the gradients and the update with {ops} and so rounds differently.")
    says = {
        "update_arithmetic": ("changes", "the arithmetic of every update"),
        "batch_order": ("gives", "the models other batches, so their updates differ"),
        "training_draws": ("changes", "the random draws during training (shuffle, dropout)"),
        "numerics": ("makes", "the same arithmetic round differently"),
        "network": ("makes", "B a different network"),
    }[mechanism]
    return verdict(mechanism, f"{same}, A and B split at epoch {first}: {_factors(pair, paths, says[0])} {says[1]}.")
