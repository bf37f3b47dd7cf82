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


def compare_weights(wa: dict[str, np.ndarray], wb: dict[str, np.ndarray]) -> dict:
    shared = [n for n in wa if n in wb and wa[n].shape[1:] == wb[n].shape[1:]]
    epochs = min(len(wa[n]) for n in shared) if shared else 0
    per_epoch, first_divergent = [], None
    for e in range(epochs):
        layers = {n: weight_distance(wa[n][e], wb[n][e]) for n in shared}
        total_a = float(np.sqrt(sum(np.sum(wa[n][e].astype(np.float64) ** 2) for n in shared)))
        total_l2 = float(np.sqrt(sum(d["l2"] ** 2 for d in layers.values())))
        per_epoch.append({
            "epoch": e,
            "l2": total_l2,
            "relative": total_l2 / total_a if total_a > 0 else 0.0,
            "max_abs": max(d["max_abs"] for d in layers.values()),
            "layers": layers,
        })
        if first_divergent is None and not all(_bitwise_equal(wa[n][e], wb[n][e]) for n in shared):
            first_divergent = e
    same_shape = set(shared) == set(wa) == set(wb) and all(len(wa[n]) == len(wb[n]) for n in shared)
    return {
        "per_epoch": per_epoch,
        "first_divergent_epoch": first_divergent,
        "weights_bitwise_equal": bool(shared) and same_shape and first_divergent is None,
        "not_comparable": sorted(set(wa) ^ set(wb) | {n for n in wa if n in wb and n not in shared}),
    }


def compare_predictions(pa: np.ndarray, pb: np.ndarray, task: str) -> dict:
    delta = pa.astype(np.float64) - pb.astype(np.float64)
    out = {
        "prediction_max_abs_delta": float(np.max(per_sample_delta(pa, pb))),
        "prediction_mean_abs_delta": float(np.mean(np.abs(delta))),
        "predictions_bitwise_equal": _bitwise_equal(pa, pb),
        "disagreement_rate": 0.0,
        "disagreements": 0,
        "prediction_rms_delta": float(np.sqrt(np.mean(delta ** 2))),
    }
    if task == "classification":
        differ = np.argmax(pa, axis=1) != np.argmax(pb, axis=1)
        out["disagreement_rate"] = float(np.mean(differ))
        out["disagreements"] = int(np.sum(differ))
    return out


def per_sample_delta(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Each test sample's largest absolute prediction difference."""
    delta = np.abs(pa.astype(np.float64) - pb.astype(np.float64))
    return delta.max(axis=1) if delta.ndim == 2 else delta


def compare_runs(wa, wb, prediction_history_a, prediction_history_b, task: str) -> dict:
    """Weights per epoch, final predictions, and the largest prediction gap after each epoch."""
    epochs = min(len(prediction_history_a), len(prediction_history_b))
    gap = [float(per_sample_delta(prediction_history_a[e], prediction_history_b[e]).max()) for e in range(epochs)]
    return {**compare_weights(wa, wb), **compare_predictions(prediction_history_a[-1], prediction_history_b[-1], task),
            "prediction_max_abs_delta_per_epoch": gap}
