"""Data loading and each preprocessing variant against an independent reference."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from core import data
from core.config import ConfigError, DataConfig, PreprocessConfig
from core.preprocess import preprocess


def _prep(ds, **kw):
    return preprocess(ds, PreprocessConfig(**kw))


@pytest.fixture(scope="module")
def cancer():
    return data.load(DataConfig(dataset="breast_cancer"))


@pytest.mark.parametrize("scaler, reference", [("standard_population", StandardScaler), ("minmax", MinMaxScaler)])
def test_scalers_match_scikit_learn(cancer, scaler, reference):
    x_train, _, x_test, _ = _prep(cancer, scaler=scaler, input_dtype="float64")
    ref = reference().fit(cancer.x_train)
    np.testing.assert_allclose(x_train, ref.transform(cancer.x_train), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x_test, ref.transform(cancer.x_test), rtol=1e-12, atol=1e-12)


def test_standard_sample_matches_pandas_std(cancer):
    x_train, _, _, _ = _prep(cancer, scaler="standard_sample", input_dtype="float64")
    frame = pd.DataFrame(cancer.x_train)
    ref = ((frame - frame.mean()) / frame.std()).to_numpy()
    np.testing.assert_allclose(x_train, ref, rtol=1e-12, atol=1e-12)
    population, _, _, _ = _prep(cancer, scaler="standard_population", input_dtype="float64")
    assert np.max(np.abs(population - x_train)) > 1e-4  # the two really differ


def test_fitting_on_all_rows_uses_the_test_rows_too(cancer):
    x_train, _, _, _ = _prep(cancer, fit_on="all", input_dtype="float64")
    ref = StandardScaler().fit(np.vstack([cancer.x_train, cancer.x_test]))
    np.testing.assert_allclose(x_train, ref.transform(cancer.x_train), rtol=1e-12, atol=1e-12)


def test_float32_preprocessing_rounds_differently_from_float64(cancer):
    x32, _, _, _ = _prep(cancer, input_dtype="float32")
    x64, _, _, _ = _prep(cancer, input_dtype="float64")
    assert x32.dtype == np.float32 and x64.dtype == np.float64
    assert not np.array_equal(x32, x64.astype(np.float32))
    np.testing.assert_allclose(x32, x64, atol=1e-5)


@pytest.mark.parametrize("how", ["mean", "median", "zero"])
def test_imputation_matches_pandas_fillna(how):
    ds = data.load(DataConfig(dataset="diabetes", missing_rate=0.2, missing_seed=3))
    assert np.isnan(ds.x_train).mean() == pytest.approx(0.2, abs=0.03)
    x_train, _, x_test, _ = _prep(ds, impute=how, scaler="none", input_dtype="float64")
    frame = pd.DataFrame(ds.x_train)
    fill = {"mean": frame.mean(), "median": frame.median(), "zero": 0.0}[how]
    np.testing.assert_allclose(x_train, frame.fillna(fill).to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(x_test, pd.DataFrame(ds.x_test).fillna(fill).to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("how", ["mean", "median"])
def test_test_rows_with_gaps_are_filled_from_complete_training_rows(how):
    ds = data.load(DataConfig(dataset="diabetes"))
    x_test = ds.x_test.copy()
    x_test[0, 2] = np.nan
    holed = dataclasses.replace(ds, x_test=x_test)
    _, _, filled, _ = _prep(holed, impute=how, scaler="none", input_dtype="float64")
    expected = getattr(pd.DataFrame(ds.x_train)[2], how)()
    assert expected != 0 and filled[0, 2] == pytest.approx(expected, rel=1e-12)


def test_drop_removes_incomplete_training_rows_and_keeps_every_test_row():
    ds = data.load(DataConfig(dataset="diabetes", missing_rate=0.05))
    x_train, y_train, x_test, _ = _prep(ds, impute="drop", input_dtype="float64", scaler="none")
    complete = ~np.isnan(ds.x_train).any(axis=1)
    assert len(x_train) == complete.sum() < len(ds.x_train)
    np.testing.assert_array_equal(y_train, ds.y_train[complete])
    assert len(x_test) == len(ds.x_test) and not np.isnan(x_test).any()


def test_datasets_load_with_the_same_split_every_time():
    for name in ("digits", "breast_cancer", "diabetes", "moons", "spirals", "series"):
        first, second = data.load(DataConfig(dataset=name)), data.load(DataConfig(dataset=name))
        assert first.fingerprint() == second.fingerprint(), name
        assert len(first.x_test) > 0 and len(first.x_train) > len(first.x_test), name
    digits = data.load(DataConfig())
    assert digits.x_train.shape[1] == 64 and digits.n_classes == 10 and digits.image_shape == (8, 8)
    assert len(digits.x_test) == 360
    assert data.load(DataConfig(split_seed=1)).fingerprint() != digits.fingerprint()
    series = data.load(DataConfig(dataset="series", window=12, n_samples=300))
    assert series.x_train.shape[1] == 12 and series.task == "regression"
    np.testing.assert_array_equal(series.x_train[1, :-1], series.x_train[0, 1:])  # sliding windows


def _csv(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def test_csv_loads_numeric_features_and_class_labels(tmp_path):
    rows = "\n".join(f"{i},{i * 2 % 7},{'yes' if i % 3 else 'no'}" for i in range(30))
    ds = data.load(DataConfig(dataset="csv", csv_path=_csv(tmp_path, "a,b,label\n" + rows), csv_target="label"))
    assert ds.task == "classification" and ds.n_classes == 2 and ds.class_names == ["no", "yes"]
    assert ds.feature_names == ["a", "b"] and len(ds.x_train) + len(ds.x_test) == 30


@pytest.mark.parametrize("text, target, message", [
    ("a,b,y\n" + "\n".join(f"{i},x{i},{i % 2}" for i in range(20)), "y", "non-numeric feature column(s) b"),
    ("a,y\n" + "\n".join(f"{i},1" for i in range(20)), "y", "has a single class"),
    ("a,y\n1,0\n2,1\n3,0", "y", "3 rows with a target; at least 10 are needed"),
    ("a,y\n1,0\n", "z", "no column 'z'"),
    ("", "y", "not a readable CSV"),
])
def test_broken_csvs_get_clear_errors(tmp_path, text, target, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load(DataConfig(dataset="csv", csv_path=_csv(tmp_path, text), csv_target=target))


def test_keras_normalization_matches_scikit_learn(cancer):
    keras = pytest.importorskip("keras")
    from core.engine_keras import keras_normalizer

    x_train, _, x_test, _ = preprocess(cancer, PreprocessConfig(scaler="keras_normalization"), keras_normalizer(keras))
    ref = StandardScaler().fit(cancer.x_train.astype(np.float32))
    np.testing.assert_allclose(x_train, ref.transform(cancer.x_train), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x_test, ref.transform(cancer.x_test), rtol=1e-4, atol=1e-4)
