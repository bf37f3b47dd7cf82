"""A PairResult turned into tidy data frames and plain sentences (no Streamlit here).

Every number here is read from the result the workers measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.compare import finite_rows, per_sample_delta, weights_digest
from core.export import pair_unlike_a_plain_script
from core.factors import factor, format_value, parse_pair
from core.budget import RECORD_BUDGET_MB
from core.pair import PairResult

MODELS = {"a": "A", "b": "B"}


def number(value: float | None, spec: str = ".3g") -> str:
    """A measured number as shown, or a dash where there is none (a run diverged)."""
    return "—" if value is None or not np.isfinite(value) else format(value, spec)


def history(result: PairResult) -> pd.DataFrame:
    """epoch, model, split, loss, metric."""
    rows = []
    for m, label in MODELS.items():
        for row in result.summary[m]["history"]:
            rows.append({"epoch": row["epoch"], "model": label, "split": "train", "loss": row["loss"],
                         "metric": row["metric"]})
            rows.append({"epoch": row["epoch"], "model": label, "split": "test", "loss": row["test_loss"],
                         "metric": row["test_metric"]})
    frame = pd.DataFrame(rows, columns=["epoch", "model", "split", "loss", "metric"])
    # A diverged epoch's loss is inf or NaN: no point on a chart, and not a number to subtract.
    frame[["loss", "metric"]] = frame[["loss", "metric"]].astype(float).where(
        np.isfinite(frame[["loss", "metric"]].astype(float)))
    return frame


def gaps(hist: pd.DataFrame, measure: str = "loss") -> pd.DataFrame:
    """epoch, split, gap = A's value minus B's, for the epochs where both are finite."""
    wide = hist.pivot_table(index=["epoch", "split"], columns="model", values=measure, dropna=False).reindex(
        columns=["A", "B"]).reset_index()
    wide["gap"] = wide["A"] - wide["B"]
    return wide.loc[np.isfinite(wide["gap"]), ["epoch", "split", "gap"]].reset_index(drop=True)


def distances(result: PairResult) -> pd.DataFrame:
    """epoch, layer, l2, relative, max_abs, cosine per variable, plus layer 'all weights'."""
    rows = []
    for e in result.summary["compare"]["per_epoch"]:
        rows.append({"epoch": e["epoch"], "layer": "all weights", "l2": e["l2"], "relative": e["relative"],
                     "max_abs": e["max_abs"], "cosine": np.nan})
        rows += [{"epoch": e["epoch"], "layer": name, **d} for name, d in e["layers"].items()]
    return pd.DataFrame(rows)


def weight_values(result: PairResult, name: str, epoch: int) -> pd.DataFrame:
    """value, model: every element of one variable at one epoch (0 = initialisation; -1 = last)."""
    frames = [pd.DataFrame({"value": result.weights(m)[name][epoch].ravel().astype(np.float64), "model": label})
              for m, label in MODELS.items()]
    return pd.concat(frames, ignore_index=True)


def weight_delta(result: PairResult, name: str, epoch: int) -> pd.DataFrame:
    a, b = result.weights("a")[name], result.weights("b")[name]
    return pd.DataFrame({"A − B": (a[epoch].astype(np.float64) - b[epoch].astype(np.float64)).ravel()})


def predictions(result: PairResult) -> pd.DataFrame:
    """Per test sample: truth, A's and B's prediction, and the largest absolute difference.

    For classification, a and b are each model's probability of the true class.
    """
    pa, pb = result.predictions("a"), result.predictions("b")
    y = result.arrays["data/y_test"]
    frame = pd.DataFrame({"sample": np.arange(len(y)), "truth": y, "delta": per_sample_delta(pa, pb)})
    if result.summary["data"]["task"] == "classification":
        idx = np.arange(len(y))
        frame["a"], frame["b"] = pa[idx, y], pb[idx, y]
        frame["class_a"], frame["class_b"] = pa.argmax(axis=1), pb.argmax(axis=1)
        frame["differs"] = (frame["class_a"] != frame["class_b"]) & finite_rows(pa) & finite_rows(pb)
    else:
        frame["a"], frame["b"] = pa[:, 0], pb[:, 0]
        frame["differs"] = False
    return frame


def decision_grid(result: PairResult) -> pd.DataFrame | None:
    """x1, x2, A, B, disagree over the input plane (2-feature classification only)."""
    if "data/grid" not in result.arrays or "a/grid_predictions" not in result.arrays:
        return None
    grid = result.arrays["data/grid"]
    pa, pb = result.arrays["a/grid_predictions"], result.arrays["b/grid_predictions"]
    return pd.DataFrame({"x1": grid[:, 0], "x2": grid[:, 1], "A": pa[:, -1], "B": pb[:, -1],
                         "disagree": pa.argmax(axis=1) != pb.argmax(axis=1)})


def forecast(result: PairResult) -> pd.DataFrame:
    y = result.arrays["data/y_test"]
    step = np.arange(len(y))
    parts = [pd.DataFrame({"step": step, "source": "truth", "value": y})]
    parts += [pd.DataFrame({"step": step, "source": label, "value": result.predictions(m)[:, 0]})
              for m, label in MODELS.items()]
    return pd.concat(parts, ignore_index=True)


def what_differs(pair_dict: dict) -> pd.DataFrame:
    """Only the differing factors: label, A's value, B's value, mechanism."""
    pair = parse_pair(pair_dict)
    rows = [{"factor": factor(path).label, "A": format_value(path, pair.a.get(path)),
             "B": format_value(path, value), "mechanism": factor(path).mechanism}
            for path, value in pair.b_differs]
    if pair.b_starts_from_a_init:
        rows.append({"factor": "Initial weights", "A": "drawn", "B": "copied from A",
                     "mechanism": "B starts from exactly A's initial weights, so initialisation cannot differ."})
    if pair.same_process:
        rows.append({"factor": "Process", "A": "built first", "B": "built next, in A's process",
                     "mechanism": "The seeds are set once per process: B's initializers draw after A's."})
    return pd.DataFrame(rows, columns=["factor", "A", "B", "mechanism"])


def plain_script_note(pair_dict: dict) -> str:
    """One line: where A and B are set up unlike a plain script of their framework, or that they are not; empty for a
    pair built in one process (the Overview shows its code instead)."""
    pair = parse_pair(pair_dict)
    if pair.same_process:
        return ""
    parts = [f"{who}: {'; '.join(items)}" for who, items in pair_unlike_a_plain_script(pair).items()]
    if not parts:
        return ("A and B shuffle, train and predict with their framework's own calls and thread defaults, as a plain "
                "script does, and so does the script on the Reproduce page.")
    return (f"Unlike a plain script of its framework: {' · '.join(parts)}. The script on the Reproduce page does the "
            "same, so compare your own script with that one.")


def environment(result: PairResult) -> pd.DataFrame:
    """Settings in effect for A and B, side by side."""
    keys = ["device", "frameworks imported", "jit_compile", "dtype_policy", "intra_op_threads", "inter_op_threads",
            "onednn", "op_determinism", "tf32", "matmul_precision", "seeding", "optimizer_class", "fit", "predict",
            "tf.keras is"]
    rows = []
    for key in keys:
        row = {"setting": key}
        for m, label in MODELS.items():
            row[label] = str(result.summary[m].get("effective", {}).get(key, "—"))
        rows.append(row)
    for key in ("tensorflow", "jax", "torch", "keras"):
        rows.append({"setting": f"{key} version", **{label: str(result.summary[m].get("versions", {}).get(key, "—"))
                                                     for m, label in MODELS.items()}})
    return pd.DataFrame(rows)


def final_gaps(result: PairResult) -> pd.DataFrame:
    """Per variable: the final max |A - B|, as the exported script prints it."""
    last = result.summary["compare"]["per_epoch"][-1]["layers"]
    return pd.DataFrame([{"variable": name, "max |A-B|": d["max_abs"]} for name, d in last.items()])


def final_digests(result: PairResult) -> dict[str, str]:
    """Model label -> digest of its final weights (the exported script prints the same digest)."""
    return {label: weights_digest({k: v[-1] for k, v in result.weights(m).items()}) for m, label in MODELS.items()}


FINGERPRINT_SETTINGS = ("device", "gpus_visible", "machine", "cpu_count", "intra_op_threads", "inter_op_threads",
                        "onednn", "op_determinism", "tf32", "jit_compile", "dtype_policy", "floatx", "env")


def fingerprint(result: PairResult) -> dict:
    """Where each run ran: library versions, device, CPU and its SIMD flags, threads, oneDNN, env vars."""
    out = {"libraries": result.summary["versions"]}
    for m, label in MODELS.items():
        run = result.summary[m]
        effective = run.get("effective", {})
        out[label] = {"versions": run.get("versions", {}),
                      **{k: effective[k] for k in FINGERPRINT_SETTINGS if k in effective}}
    return out


def verdict(result: PairResult) -> list[str]:
    """Plain sentences built from the measured numbers."""
    s = result.summary
    c, data = s["compare"], s["data"]
    if c is None:
        return ["No comparison: " + "; ".join(f"{MODELS[m]} {s[m]['status']}: {s[m]['message']}"
                                               for m in MODELS if s[m]["status"] not in ("ok", "diverged"))]
    out = []
    for m, label in MODELS.items():
        if s[m]["status"] == "diverged":
            out.append(f"{label} {s[m]['message']}; its record ends there.")
    if c["weights_bitwise_equal"] and c["predictions_bitwise_equal"]:
        out.append("A and B are bitwise identical: every weight after every epoch and every test prediction.")
        return out
    first = c["first_divergent_epoch"]
    when = "never differ" if first is None else (
        "already differ at initialisation" if first == 0 else f"first differ after epoch {first}")
    out.append(f"The weights {when}.")
    for m, label in MODELS.items():
        if c["nonfinite_predictions"][m]:
            out.append(f"{label}'s final predictions are not finite for {c['nonfinite_predictions'][m]} of "
                       f"{data['n_test']} test samples; the gaps count only the {c['compared_samples']} samples "
                       "both models predict.")
    if not c["compared_samples"]:
        return out
    if data["task"] == "classification":
        out.append(f"{c['disagreements']} of {c['compared_samples']} test predictions change class "
                   f"({c['disagreement_rate']:.1%}); the largest probability gap is "
                   f"{c['prediction_max_abs_delta']:.3g}.")
    else:
        out.append(f"The largest prediction gap is {c['prediction_max_abs_delta']:.3g} "
                   f"(RMS {c['prediction_rms_delta']:.3g}).")
    every = {label: result.recorded_epochs(m) for m, label in MODELS.items()}
    thinned = [label for m, label in MODELS.items() if len(every[label]) < len(s[m]["history"]) + 1]
    if thinned:
        out.append(f"{' and '.join(thinned)} recorded weights and predictions only at epochs "
                   f"{', '.join(map(str, every[thinned[0]][:6]))}{', …' if len(every[thinned[0]]) > 6 else ''} "
                   f"to stay within {RECORD_BUDGET_MB:g} MB per run; epoch-by-epoch charts show those epochs.")
    return out


def final_metrics(result: PairResult) -> pd.DataFrame:
    rows = []
    metric = "accuracy" if result.summary["data"]["task"] == "classification" else "MAE"
    for m, label in MODELS.items():
        last = result.summary[m]["history"][-1] if result.summary[m]["history"] else {}
        rows.append({"model": label, "epochs": len(result.summary[m]["history"]),
                     "train loss": last.get("loss"), "test loss": last.get("test_loss"),
                     f"test {metric}": last.get("test_metric"),
                     "train time (s)": result.summary[m].get("timings", {}).get("train_s")})
    return pd.DataFrame(rows)
