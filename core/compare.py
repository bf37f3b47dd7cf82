"""How far apart two runs are: weights per epoch and layer, and test predictions.

Pure NumPy on the recorded arrays; weights are dicts of name -> (epochs + 1, ...)
with index 0 the initialisation.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same bits; across dtypes (float32 A, float64 B) the same values, since the bits cannot match."""
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype:
        return a.tobytes() == b.tobytes()
    return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64)))


def weights_digest(weights: dict[str, np.ndarray]) -> str:
    """Short SHA-256 of named arrays (names, dtypes, shapes, bytes): equal digests, bitwise-equal weights."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        w = np.ascontiguousarray(weights[name])
        digest.update(f"{name}|{w.dtype.str}|{w.shape}|".encode())
        digest.update(w.tobytes())
    return digest.hexdigest()[:16]


def weight_distance(a: np.ndarray, b: np.ndarray) -> dict:
    """Distances between two snapshots of one variable (computed in float64)."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    diff = a - b
    l2 = float(np.linalg.norm(diff))
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return {
        "l2": l2,
        "relative": l2 / na if na > 0 else (0.0 if l2 == 0 else float("inf")),
        "max_abs": float(np.max(np.abs(diff))) if diff.size else 0.0,
        "cosine": float(a @ b / (na * nb)) if na > 0 and nb > 0 else float(na == nb),
    }


def _epochs(recorded: list[int] | None, n: int) -> list[int]:
    return list(range(n)) if recorded is None else list(recorded)


def compare_weights(wa: dict[str, np.ndarray], wb: dict[str, np.ndarray],
                    epochs_a: list[int] | None = None, epochs_b: list[int] | None = None) -> dict:
    """Distances at every epoch both runs recorded (a run that diverged stops early; a long
    run may record every k-th epoch), and the first of those where any variable differs."""
    shared = [n for n in wa if n in wb and wa[n].shape[1:] == wb[n].shape[1:]]
    ea = _epochs(epochs_a, min((len(wa[n]) for n in shared), default=0))
    eb = _epochs(epochs_b, min((len(wb[n]) for n in shared), default=0))
    index_b = {e: i for i, e in enumerate(eb)}
    common = [(e, i, index_b[e]) for i, e in enumerate(ea) if e in index_b]
    per_epoch, first_divergent = [], None
    for e, i, j in common:
        layers = {n: weight_distance(wa[n][i], wb[n][j]) for n in shared}
        total_a = float(np.sqrt(sum(np.sum(wa[n][i].astype(np.float64) ** 2) for n in shared)))
        total_l2 = float(np.sqrt(sum(d["l2"] ** 2 for d in layers.values())))
        per_epoch.append({
            "epoch": e,
            "l2": total_l2,
            "relative": total_l2 / total_a if total_a > 0 else 0.0,
            "max_abs": max(d["max_abs"] for d in layers.values()),
            "layers": layers,
        })
        if first_divergent is None and not all(_bitwise_equal(wa[n][i], wb[n][j]) for n in shared):
            first_divergent = e
    same_shape = set(shared) == set(wa) == set(wb) and ea == eb
    if first_divergent is None and shared and ea[-1] != eb[-1]:  # equal as far as both go, then one stopped
        first_divergent = min(ea[-1], eb[-1]) + 1
    return {
        "per_epoch": per_epoch,
        "first_divergent_epoch": first_divergent,
        "weights_bitwise_equal": bool(shared) and same_shape and first_divergent is None,
        "not_comparable": sorted(set(wa) ^ set(wb) | {n for n in wa if n in wb and n not in shared}),
    }


def finite_rows(p: np.ndarray) -> np.ndarray:
    """Which test samples have a finite prediction (a diverged model predicts NaN)."""
    finite = np.isfinite(p)
    return finite.all(axis=tuple(range(1, p.ndim))) if p.ndim > 1 else finite


def compare_predictions(pa: np.ndarray, pb: np.ndarray, task: str) -> dict:
    """Gaps over the samples both models predict finitely; None where there are none.

    A non-finite prediction is no class: a diverged model's NaN outputs are counted as
    non-finite, never as class changes.
    """
    both = finite_rows(pa) & finite_rows(pb)
    fa, fb = pa[both], pb[both]
    delta = fa.astype(np.float64) - fb.astype(np.float64)
    n = int(both.sum())
    out = {
        "compared_samples": n,
        "nonfinite_predictions": {"a": int((~finite_rows(pa)).sum()), "b": int((~finite_rows(pb)).sum())},
        "prediction_max_abs_delta": float(np.max(per_sample_delta(fa, fb))) if n else None,
        "prediction_mean_abs_delta": float(np.mean(np.abs(delta))) if n else None,
        "prediction_rms_delta": float(np.sqrt(np.mean(delta ** 2))) if n else None,
        "predictions_bitwise_equal": _bitwise_equal(pa, pb),
        "disagreement_rate": 0.0 if n else None,
        "disagreements": 0,
    }
    if task == "classification" and n:
        differ = np.argmax(fa, axis=1) != np.argmax(fb, axis=1)
        out["disagreement_rate"] = float(np.mean(differ))
        out["disagreements"] = int(np.sum(differ))
    return out


def per_sample_delta(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Each test sample's largest absolute prediction difference (NaN where either is not finite)."""
    with np.errstate(invalid="ignore"):
        delta = np.abs(pa.astype(np.float64) - pb.astype(np.float64))
    return delta.max(axis=1) if delta.ndim == 2 else delta


def compare_runs(wa, wb, prediction_history_a, prediction_history_b, task: str,
                 epochs_a: list[int] | None = None, epochs_b: list[int] | None = None) -> dict:
    """Weights at every epoch both recorded, the final predictions, and the largest prediction gap per epoch.

    The final predictions are each run's last: a run that diverged and stopped early is
    compared as it ended.
    """
    ea, eb = _epochs(epochs_a, len(prediction_history_a)), _epochs(epochs_b, len(prediction_history_b))
    index_b = {e: i for i, e in enumerate(eb)}
    gap = []
    for i, e in enumerate(ea):
        if e in index_b:
            largest = compare_predictions(prediction_history_a[i], prediction_history_b[index_b[e]], task)
            gap.append({"epoch": e, "max_abs": largest["prediction_max_abs_delta"]})
    return {**compare_weights(wa, wb, ea, eb),
            **compare_predictions(prediction_history_a[-1], prediction_history_b[-1], task),
            "prediction_max_abs_delta_per_epoch": gap}
