"""Comparisons against direct NumPy formulas."""

import numpy as np

from core.compare import compare_predictions, compare_runs, compare_weights


def test_weight_distances_match_numpy():
    rng = np.random.default_rng(0)
    a = {"k": rng.normal(size=(3, 4, 5)).astype(np.float32), "b": rng.normal(size=(3, 5)).astype(np.float32)}
    b = {"k": a["k"].copy(), "b": a["b"].copy()}
    b["k"][2] += 0.01
    b["b"][1, 0] = 7.0
    c = compare_weights(a, b)
    assert c["first_divergent_epoch"] == 1 and not c["weights_bitwise_equal"]
    d = (a["k"][2].astype(np.float64) - b["k"][2]).ravel()
    layer = c["per_epoch"][2]["layers"]["k"]
    assert np.isclose(layer["l2"], np.linalg.norm(d))
    assert np.isclose(layer["relative"], np.linalg.norm(d) / np.linalg.norm(a["k"][2].astype(np.float64)))
    assert np.isclose(layer["max_abs"], np.abs(d).max())
    x, y = a["k"][2].astype(np.float64).ravel(), b["k"][2].astype(np.float64).ravel()
    assert np.isclose(layer["cosine"], x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    assert c["per_epoch"][0]["l2"] == 0.0
    assert np.isclose(c["per_epoch"][1]["max_abs"], abs(7.0 - a["b"][1, 0]))


def test_identical_runs_are_bitwise_equal_and_never_diverge():
    w = {"k": np.arange(12, dtype=np.float32).reshape(3, 4)}
    c = compare_weights(w, {"k": w["k"].copy()})
    assert c["weights_bitwise_equal"] and c["first_divergent_epoch"] is None


def test_prediction_deltas_match_numpy():
    pa = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    pb = np.array([[0.8, 0.2], [0.7, 0.3], [0.5, 0.5]])
    c = compare_predictions(pa, pb, "classification")
    assert np.isclose(c["prediction_max_abs_delta"], 0.3)
    assert np.isclose(c["prediction_mean_abs_delta"], np.abs(pa - pb).mean())
    assert c["disagreements"] == 1 and np.isclose(c["disagreement_rate"], 1 / 3)
    r = compare_predictions(np.array([[1.0], [2.0]]), np.array([[1.5], [2.0]]), "regression")
    assert np.isclose(r["prediction_rms_delta"], np.sqrt(0.125)) and r["disagreement_rate"] == 0.0


def test_compare_runs_reports_the_gap_after_every_epoch():
    w = {"k": np.zeros((3, 2))}
    ha = np.zeros((3, 4, 2))
    hb = ha.copy()
    hb[2, 1, 0] = 0.25
    c = compare_runs(w, w, ha, hb, "classification")
    assert c["prediction_max_abs_delta_per_epoch"] == [
        {"epoch": 0, "max_abs": 0.0}, {"epoch": 1, "max_abs": 0.0}, {"epoch": 2, "max_abs": 0.25}]


def test_a_run_that_stopped_early_is_compared_where_both_have_epochs():
    """B diverged after epoch 2 of 5: its record ends there (it used to raise IndexError)."""
    rng = np.random.default_rng(1)
    wa = {"k": rng.normal(size=(6, 3, 2))}
    wb = {"k": wa["k"][:3].copy()}
    wb["k"][2] = np.nan
    c = compare_weights(wa, wb)
    assert [e["epoch"] for e in c["per_epoch"]] == [0, 1, 2]
    assert c["first_divergent_epoch"] == 2 and not c["weights_bitwise_equal"]
    assert c["per_epoch"][1]["l2"] == 0.0 and np.isnan(c["per_epoch"][2]["l2"])
    same_start = compare_weights(wa, {"k": wa["k"][:3].copy()})  # equal as far as both go
    assert same_start["first_divergent_epoch"] == 3 and not same_start["weights_bitwise_equal"]


def test_non_finite_predictions_are_not_class_changes():
    pa = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    pb = np.array([[np.nan, np.nan], [0.7, 0.3], [0.1, 0.9], [np.inf, 0.0]])
    c = compare_predictions(pa, pb, "classification")
    assert c["compared_samples"] == 2 and c["nonfinite_predictions"] == {"a": 0, "b": 2}
    assert c["disagreements"] == 1 and c["disagreement_rate"] == 0.5  # row 1 only; argmax of NaN would say row 0
    assert np.isclose(c["prediction_max_abs_delta"], 0.3)
    assert np.isclose(c["prediction_rms_delta"], np.sqrt(np.mean((pa[1:3] - pb[1:3]) ** 2)))
    none = compare_predictions(pa, np.full_like(pa, np.nan), "classification")
    assert none["compared_samples"] == 0 and none["prediction_max_abs_delta"] is None
    assert none["disagreements"] == 0 and none["disagreement_rate"] is None


def test_thinned_records_are_compared_at_the_epochs_both_kept():
    rng = np.random.default_rng(2)
    full = rng.normal(size=(7, 2))  # epochs 0..6
    wa, wb = {"k": full}, {"k": full[[0, 3, 6]].copy()}
    wb["k"][1] += 1.0
    c = compare_runs(wa, wb, full[:, :, None], wb["k"][:, :, None], "regression", list(range(7)), [0, 3, 6])
    assert [e["epoch"] for e in c["per_epoch"]] == [0, 3, 6]
    assert c["first_divergent_epoch"] == 3 and c["per_epoch"][2]["l2"] == 0.0
    assert [g["epoch"] for g in c["prediction_max_abs_delta_per_epoch"]] == [0, 3, 6]


def test_float32_and_float64_copies_of_the_same_weights_count_as_equal():
    w = {"k": np.array([[0.1, 0.2]], dtype=np.float32)}
    assert compare_weights(w, {"k": w["k"].astype(np.float64)})["first_divergent_epoch"] is None
    assert compare_weights(w, {"k": np.array([[0.1, 0.2]])})["first_divergent_epoch"] == 0  # 0.1 in float64
