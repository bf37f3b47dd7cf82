"""Datasets, nothing downloaded: scikit-learn's bundled sets, labelled synthetic
generators, and an uploaded CSV. Missing values are injected here, before the
split, so that A and B get exactly the same samples and the same holes.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from core.config import ConfigError, DataConfig

DESCRIPTIONS = {
    "digits": "scikit-learn digits: 1,797 real 8x8 handwritten digits, 10 classes",
    "breast_cancer": "scikit-learn breast cancer: 569 real tumours, 30 features, 2 classes",
    "diabetes": "scikit-learn diabetes: 442 real patients, 10 features, regression "
    "(target standardised with the training split's mean and std)",
    "moons": "two moons: synthetic, 2 features, 2 classes",
    "spirals": "two spirals: synthetic, 2 features, 2 classes",
    "series": "seasonal series: synthetic daily and weekly cycles plus trend and noise, "
    "cut into windows to forecast the next value (last part held out)",
    "csv": "uploaded CSV",
}
MIN_CSV_ROWS = 10
MAX_CSV_CLASSES = 20


@dataclass
class Dataset:
    task: str  # classification | regression
    n_classes: int  # 0 for regression
    x_train: np.ndarray  # float64, may hold NaN (missing values)
    y_train: np.ndarray  # int64 class ids or float64 targets
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    description: str
    image_shape: tuple[int, int] | None = None  # digits: (8, 8)
    class_names: list[str] | None = None
    grid: np.ndarray | None = None  # 2-feature data: points covering the inputs, for decision-boundary maps

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def load(cfg: DataConfig) -> Dataset:
    """The dataset `cfg` names, split and with its missing values injected.

    Bundled and generated data are remembered (a CSV is read every time: its file may change).
    """
    return _read(cfg) if cfg.dataset == "csv" else _remembered(cfg)


def _read(cfg: DataConfig) -> Dataset:
    if cfg.dataset == "series":
        return _series(cfg)
    x, y, names, task, extra = _features(cfg)
    x = inject_missing(x, cfg.missing_rate, cfg.missing_seed)
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" and np.bincount(y).min() >= 2 else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=cfg.test_fraction, random_state=cfg.split_seed, stratify=stratify)
    if cfg.dataset == "diabetes":
        mean, std = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
    if len(x_test) == 0 or len(x_train) < 2:
        raise ConfigError("data.test_fraction: leaves no test rows or too few training rows")
    n_classes = int(max(y.max() + 1, 2)) if task == "classification" else 0
    return Dataset(task, n_classes, x_train, y_train, x_test, y_test, names,
                   extra.get("description", DESCRIPTIONS[cfg.dataset]), extra.get("image_shape"),
                   extra.get("class_names"), _grid(x) if x.shape[1] == 2 else None)


_remembered = functools.lru_cache(maxsize=16)(_read)
GRID_STEPS = 60


def _grid(x: np.ndarray) -> np.ndarray:
    """A GRID_STEPS x GRID_STEPS lattice over the inputs' range plus a margin, row-major in (x2, x1)."""
    lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    margin = (hi - lo) * 0.1
    axes = [np.linspace(l - m, h + m, GRID_STEPS) for l, h, m in zip(lo, hi, margin)]
    x1, x2 = np.meshgrid(*axes)
    return np.column_stack([x1.ravel(), x2.ravel()])


def _features(cfg: DataConfig):
    from sklearn import datasets

    if cfg.dataset == "digits":
        d = datasets.load_digits()
        return d.data.astype(np.float64), d.target.astype(np.int64), [f"px{i}" for i in range(64)], \
            "classification", {"image_shape": (8, 8), "class_names": [str(i) for i in range(10)]}
    if cfg.dataset == "breast_cancer":
        d = datasets.load_breast_cancer()
        return d.data, d.target.astype(np.int64), list(d.feature_names), "classification", \
            {"class_names": list(d.target_names)}
    if cfg.dataset == "diabetes":
        d = datasets.load_diabetes()
        return d.data, d.target.astype(np.float64), list(d.feature_names), "regression", {}
    if cfg.dataset == "moons":
        x, y = datasets.make_moons(n_samples=cfg.n_samples, noise=cfg.noise, random_state=cfg.data_seed)
        return x, y.astype(np.int64), ["x1", "x2"], "classification", {}
    if cfg.dataset == "spirals":
        x, y = spirals(cfg.n_samples, cfg.noise, cfg.data_seed)
        return x, y, ["x1", "x2"], "classification", {}
    if cfg.dataset == "csv":
        return _csv(cfg.csv_path, cfg.csv_target)
    raise ConfigError(f"data.dataset: unknown dataset {cfg.dataset!r}")


def spirals(n: int, noise: float, seed: int):
    """Two interleaved spiral arms, one per class."""
    rng = np.random.default_rng(seed)
    per_arm = n // 2
    t = np.sqrt(rng.random(per_arm)) * 3 * np.pi  # denser near the centre, as in the usual construction
    arm = np.column_stack([t * np.cos(t), t * np.sin(t)]) / (3 * np.pi)
    x = np.vstack([arm, -arm]) + rng.normal(0.0, noise * 0.1, (2 * per_arm, 2))
    y = np.repeat([0, 1], per_arm).astype(np.int64)
    return x, y


def series_windows(n: int, window: int, noise: float, seed: int):
    """n windows of `window` past values of a seasonal series (daily and weekly cycles, trend, noise), and the
    value that follows each window."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + window, dtype=np.float64)
    values = (np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / (24 * 7)) + t / len(t)
              + noise * rng.normal(size=len(t)))
    x = np.lib.stride_tricks.sliding_window_view(values[:-1], window).copy()
    return x, values[window:].copy()


def _series(cfg: DataConfig) -> Dataset:
    x, y = series_windows(cfg.n_samples, cfg.window, cfg.noise, cfg.data_seed)
    x = inject_missing(x, cfg.missing_rate, cfg.missing_seed)
    n_test = max(1, int(round(len(x) * cfg.test_fraction)))  # chronological: forecast the last part
    names = [f"t-{cfg.window - i}" for i in range(cfg.window)]
    return Dataset("regression", 0, x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:], names,
                   DESCRIPTIONS["series"])


def inject_missing(x: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """A copy of x with each cell blanked to NaN with probability `rate` (seeded)."""
    if rate <= 0:
        return x
    x = x.astype(np.float64, copy=True)
    x[np.random.default_rng(seed).random(x.shape) < rate] = np.nan
    return x


def _csv(path: str, target: str):
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"data.csv_path: no file at {path!r}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(f"data.csv_path: the file is not a readable CSV ({str(e).splitlines()[0]})") from None
    return csv_frame_features(frame, target)


def csv_frame_features(frame, target: str):
    """Features and labels from a CSV's data frame, or a ConfigError saying what is wrong with it."""
    import pandas as pd

    if target not in frame.columns:
        raise ConfigError(f"data.csv_target: no column {target!r}; columns are {', '.join(map(str, frame.columns))}")
    frame = frame.dropna(subset=[target])
    features = frame.drop(columns=[target])
    bad = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise ConfigError(f"data.csv: non-numeric feature column(s) {', '.join(bad)}; encode or drop them")
    if features.shape[1] == 0:
        raise ConfigError("data.csv: no feature columns besides the target")
    if len(frame) < MIN_CSV_ROWS:
        raise ConfigError(f"data.csv: {len(frame)} rows with a target; at least {MIN_CSV_ROWS} are needed")
    labels = frame[target]
    numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
    is_class = not numeric or (np.allclose(labels, np.round(labels)) and labels.nunique() <= MAX_CSV_CLASSES)
    x = features.to_numpy(dtype=np.float64)
    names = [str(c) for c in features.columns]
    if not is_class:
        return x, labels.to_numpy(dtype=np.float64), names, "regression", {"description": "uploaded CSV (regression)"}
    classes, y = np.unique(labels.astype(str) if not numeric else labels, return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"data.csv_target: column {target!r} has a single class ({classes[0]}); nothing to learn")
    return x, y.astype(np.int64), names, "classification", {
        "description": f"uploaded CSV ({len(classes)} classes)", "class_names": [str(c) for c in classes]}
