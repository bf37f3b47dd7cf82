"""Preprocessing variants, each the arithmetic its namesake library does.

Runs inside the worker (it is a per-run factor), in the run's preprocessing dtype.
Keras `Normalization` needs Keras, so the worker passes it in as `keras_normalize`.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from core.config import PreprocessConfig
from core.data import Dataset

# (rows to fit on, arrays to transform) -> transformed arrays
Normalizer = Callable[[np.ndarray, list[np.ndarray]], list[np.ndarray]]


def preprocess(ds: Dataset, cfg: PreprocessConfig, keras_normalize: Normalizer | None = None):
    """(x_train, y_train, x_test, grid) after imputation and scaling; grid is None unless the data has one."""
    dtype = np.dtype(cfg.input_dtype)
    x_train, x_test, y_train = ds.x_train.astype(dtype), ds.x_test.astype(dtype), ds.y_train
    extra = [] if ds.grid is None else [ds.grid.astype(dtype)]
    fill_rows = x_train if cfg.fit_on == "train" else np.vstack([x_train, x_test])
    if cfg.impute == "drop":
        keep = ~np.isnan(x_train).any(axis=1)
        if not keep.any():
            raise ValueError("preprocess.impute: 'drop' removes every training row; choose another imputation")
        fill = column_fill(fill_rows, "mean")
        x_train, y_train = x_train[keep], y_train[keep]
    else:
        fill = column_fill(fill_rows, cfg.impute)
    x_train, x_test = fill_missing(x_train, fill), fill_missing(x_test, fill)
    fit_rows = x_train if cfg.fit_on == "train" else np.vstack([x_train, x_test])
    arrays = [x_train, x_test, *extra]
    if cfg.scaler == "keras_normalization":
        arrays = keras_normalize(fit_rows, arrays)
    elif cfg.scaler != "none":
        shift, scale = scaler_stats(fit_rows, cfg.scaler)
        arrays = [(a - shift) / scale for a in arrays]
    return arrays[0], y_train, arrays[1], (arrays[2] if extra else None)


def column_fill(rows: np.ndarray, how: str) -> np.ndarray:
    """Per-column value to put in place of NaN (0 where a column has no value at all)."""
    if how == "zero":
        return np.zeros(rows.shape[1], rows.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column's fill is 0, below
        fill = np.nanmedian(rows, axis=0) if how == "median" else np.nanmean(rows, axis=0)
    return np.nan_to_num(fill).astype(rows.dtype)


def fill_missing(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), fill, x).astype(x.dtype)


def scaler_stats(rows: np.ndarray, scaler: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) such that (x - shift) / scale is the scaled input; zero spread scales by 1."""
    if scaler == "minmax":
        shift, spread = rows.min(axis=0), rows.max(axis=0) - rows.min(axis=0)
    else:
        ddof = {"standard_population": 0, "standard_sample": 1}[scaler]
        shift, spread = rows.mean(axis=0), rows.std(axis=0, ddof=ddof)
    return shift, np.where(spread == 0, 1, spread).astype(rows.dtype)

