"""Why A and B differ: attribution, the seed-noise floor and the run-it-twice check.

Each analysis is a plan (named runs, each a RunConfig and where its initial weights
come from) executed as one batch through the worker pool, then read off with the
same comparisons the pair uses. No Streamlit, no TensorFlow here.
"""

from __future__ import annotations

import threading

import numpy as np

from core import data as data_module
from core.batch import Planned, RunCache, run_batch
from core.compare import compare_runs
from core.config import PairConfig
from core.pair import pair_plan
from core.pool import Progress, WorkerPool

INTERACTION_TOLERANCE = 0.1  # shares that miss 100% by more than this mean the factors interact


def attribution_plan(pair: PairConfig) -> dict[str, Planned]:
    """A, B, and per differing factor: A with only that factor at B's value, B with only it at A's."""
    plan = pair_plan(pair, "A", "B")
    init = plan["B"].init_from
    for path, value in pair.b_differs:
        plan[f"A+{path}"] = Planned(pair.a.with_value(path, value), init)
        plan[f"B-{path}"] = Planned(pair.b.with_value(path, pair.a.get(path)), init)
    return plan


def noise_plan(pair: PairConfig, k: int) -> dict[str, Planned]:
    """A, and A with k other seeds, each drawing its own initial weights."""
    seed = pair.a.seeding.seed
    plan = {"A": Planned(pair.a)}
    for i in range(1, k + 1):
        plan[f"A seed {seed + i}"] = Planned(pair.a.with_value("seeding.seed", seed + i))
    return plan


def run_twice_plan(pair: PairConfig) -> dict[str, Planned]:
    return {"A": Planned(pair.a), "A again": Planned(pair.a, repeat=1)}


def staircase_order(attribution_result: dict) -> list[str]:
    """Factors by prediction share, largest first (the order the staircase aligns them in)."""
    rows = attribution_result.get("factors", [])
    return [r["factor"] for r in sorted(rows, key=lambda r: -(r["prediction_share"] or 0.0))]


def staircase_plan(pair: PairConfig, order: list[str]) -> dict[str, Planned]:
    """B, then B with the first 1, 2, ... factors of `order` set back to A's values, and A itself.

    The last step differs from A in nothing, so it must land where running A twice lands;
    when it also draws its own initial weights it is A's config trained once more.
    """
    plan = pair_plan(pair, "A", "step 0")
    init, run = plan["step 0"].init_from, pair.b
    for i, path in enumerate(order, start=1):
        run = run.with_value(path, pair.a.get(path))
        plan[f"step {i}"] = Planned(run, init, repeat=int(run == pair.a and init is None))
    return plan


def execute(pair: PairConfig, plan: dict[str, Planned], pool: WorkerPool | None = None,
            on_event: Progress | None = None, cancel: threading.Event | None = None,
            cache: RunCache | None | bool = True) -> dict[str, dict]:
    """Every planned run: from the run cache, or in its own fresh worker, as many at once as the pool allows."""
    ds = data_module.load(pair.data)
    outcomes = run_batch(plan, ds, pool, on_event, cancel, cache)
    return {name: {**o, "task": ds.task} for name, o in outcomes.items()}


def _finite(value: float | None) -> float | None:
    return value if value is not None and np.isfinite(value) else None


def gap(x: dict, y: dict) -> dict:
    """How far two finished runs are apart at the end: prediction RMS and weight L2.

    None where there is no finite number to give (a run that diverged predicts NaN).
    """
    c = compare_runs(x["weights"], y["weights"], x["predictions"], y["predictions"], x["task"],
                     x["recorded_epochs"], y["recorded_epochs"])
    return {"prediction": _finite(c["prediction_rms_delta"]),
            "weights": _finite(c["per_epoch"][-1]["l2"]) if c["per_epoch"] else 0.0,
            "first_divergent_epoch": c["first_divergent_epoch"], "per_epoch": c["per_epoch"]}


def _failed(outcomes: dict[str, dict]) -> list[str]:
    return [f"{name}: {o['message']}" for name, o in outcomes.items() if o["type"] != "result"]


def diverged(outcomes: dict[str, dict]) -> dict[str, int]:
    """name -> the epoch whose loss went non-finite, for the runs that diverged."""
    return {name: o["diverged_epoch"] for name, o in outcomes.items() if o.get("diverged_epoch")}


def _share(on_in_a: float | None, off_in_b: float | None, total: float | None) -> float | None:
    if None in (on_in_a, off_in_b, total) or total == 0:
        return None
    return (on_in_a + off_in_b) / 2 / total


def attribution(pair: PairConfig, outcomes: dict[str, dict]) -> dict:
    """Each factor's share of the A-B gap, from both sides (switched on in A, switched off in B).

    A share is None where a gap it needs is not finite (a run diverged): `diverged` names those runs.
    """
    if failed := _failed(outcomes):
        return {"error": "; ".join(failed)}
    total = gap(outcomes["A"], outcomes["B"])
    factors = []
    for path, _ in pair.b_differs:
        on_in_a, off_in_b = gap(outcomes["A"], outcomes[f"A+{path}"]), gap(outcomes["B"], outcomes[f"B-{path}"])
        factors.append({"factor": path, **{f"{measure}_share": _share(on_in_a[measure], off_in_b[measure],
                                                                        total[measure])
                                           for measure in ("prediction", "weights")}})
    interacts = {}
    for measure in ("prediction", "weights"):
        shares = [f[f"{measure}_share"] for f in factors]
        interacts[measure] = None if None in shares else abs(sum(shares) - 1) > INTERACTION_TOLERANCE
    return {"total": {"prediction": total["prediction"], "weights": total["weights"]}, "factors": factors,
            "interacts": interacts, "diverged": diverged(outcomes)}


def noise_floor(pair: PairConfig, outcomes: dict[str, dict], pair_gap: float | None) -> dict:
    """Seed-to-seed prediction gaps of A beside the A-B gap, and the verdict in numbers.

    Seeds whose run diverged have no finite gap: they are listed in `diverged` and left out.
    """
    if failed := _failed(outcomes):
        return {"error": "; ".join(failed)}
    gone = diverged(outcomes)
    if "A" in gone:
        return {"error": f"A diverged at epoch {gone['A']} (its loss became non-finite), so no seed-to-seed gap "
                         "is finite: lower the learning rate."}
    noise = {name: gap(outcomes["A"], o)["prediction"] for name, o in outcomes.items() if name != "A"}
    noise = {name: g for name, g in noise.items() if g is not None}
    if not noise:
        return {"error": "every other seed diverged (its loss became non-finite): there is no finite seed noise."}
    median, largest = float(np.median(list(noise.values()))), float(np.max(list(noise.values())))
    return {"noise": noise, "median": median, "max": largest, "gap": pair_gap, "diverged": gone,
            "ratio": pair_gap / median if pair_gap is not None and median > 0 else None,
            "within_noise": None if pair_gap is None else pair_gap <= largest}


def run_twice(outcomes: dict[str, dict]) -> dict:
    """Bitwise identical, or the first epoch and the variables where the two runs split."""
    if failed := _failed(outcomes):
        return {"error": "; ".join(failed)}
    first, second = outcomes["A"], outcomes["A again"]
    g = gap(first, second)
    epoch = g["first_divergent_epoch"]
    split = []
    if epoch is not None and epoch in first["recorded_epochs"] and epoch in second["recorded_epochs"]:
        i, j = first["recorded_epochs"].index(epoch), second["recorded_epochs"].index(epoch)
        split = [name for name in first["weights"]
                 if first["weights"][name][i].tobytes() != second["weights"][name][j].tobytes()]
    return {"bitwise_identical": epoch is None and first["predictions"].tobytes() == second["predictions"].tobytes(),
            "first_divergent_epoch": epoch, "variables": split, "prediction_gap": g["prediction"],
            "diverged": diverged(outcomes),
            "settings": {k: first["effective"].get(k) for k in (
                "op_determinism", "intra_op_threads", "inter_op_threads", "onednn", "jit_compile", "device", "tf32")}}


def staircase(order: list[str], outcomes: dict[str, dict], twice: dict) -> dict:
    """The A-vs-step gap after each alignment, and whether the last step lands on the run-twice level."""
    if failed := _failed(outcomes):
        return {"error": "; ".join(failed)}
    steps = []
    for i in range(len(order) + 1):
        g = gap(outcomes["A"], outcomes[f"step {i}"])
        steps.append({"step": i, "aligned": "nothing yet" if i == 0 else order[i - 1],
                      "prediction": g["prediction"], "weights": g["weights"],
                      "bitwise_equal": g["first_divergent_epoch"] is None})
    last = steps[-1]
    if twice.get("bitwise_identical"):
        lands = last["bitwise_equal"] and last["prediction"] == 0.0
    else:
        lands = None not in (last["prediction"], twice.get("prediction_gap")) and \
            last["prediction"] <= twice["prediction_gap"]
    return {"steps": steps, "lands_on_run_twice_level": lands, "diverged": diverged(outcomes)}
