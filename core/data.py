"""Datasets, nothing downloaded: scikit-learn's bundled sets, labelled synthetic
generators, and an uploaded CSV. Missing values are injected here, before the
split, so that A and B get exactly the same samples and the same holes.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import stat
import threading
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path

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

    Bundled and generated data are remembered, in memory and on disk (_kept); a CSV is read every time (its
    file may change).
    """
    with _one_load_at_a_time:
        return _read(cfg) if cfg.dataset == "csv" else _remembered(cfg)


# Two threads importing scikit-learn at once can trip Python's import-lock deadlock detection (seen:
# _DeadlockError in narwhals.stable when the app's background preparation and a first Run both load data).
_one_load_at_a_time = threading.Lock()


def _read(cfg: DataConfig) -> Dataset:
    if cfg.dataset == "series":
        return _series(cfg)
    if cfg.dataset == "csv":
        return split_features(cfg, *_csv(cfg.csv_path, cfg.csv_target))
    return split_features(cfg, *bundled_features(cfg))


def split_features(cfg: DataConfig, x: np.ndarray, y: np.ndarray, names: list[str], task: str,
                   extra: dict) -> Dataset:
    """Missing values injected, then the train/test split (and the diabetes target standardised)."""
    x = inject_missing(x, cfg.missing_rate, cfg.missing_seed)
    from sklearn.model_selection import train_test_split

    n_classes = int(max(y.max() + 1, 2)) if task == "classification" else 0
    n_test = math.ceil(cfg.test_fraction * len(x))  # as train_test_split counts
    if n_test < 1 or len(x) - n_test < 2:
        raise ConfigError("data.test_fraction: leaves no test rows or too few training rows")
    # stratified when every class can be in both parts (a small CSV may have more classes than test rows)
    stratify = y if task == "classification" and np.bincount(y).min() >= 2 and \
        min(n_test, len(x) - n_test) >= n_classes else None
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=cfg.test_fraction, random_state=cfg.split_seed, stratify=stratify)
    except ValueError as e:
        raise ConfigError(f"data.test_fraction: cannot split the {len(x)} rows ({e})") from None
    if cfg.dataset == "diabetes":
        mean, std = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
    if len(x_test) == 0 or len(x_train) < 2:
        raise ConfigError("data.test_fraction: leaves no test rows or too few training rows")
    return Dataset(task, n_classes, x_train, y_train, x_test, y_test, names,
                   extra.get("description", DESCRIPTIONS[cfg.dataset]), extra.get("image_shape"),
                   extra.get("class_names"), _grid(x) if x.shape[1] == 2 else None)


DATASETS_MB = 64  # the kept data sets (digits, the largest bundled one, takes ~1 MB)
DATASETS_LIMIT_ENV = "DIVERGENCE_LAB_DATASETS_MB"


def _kept(cfg: DataConfig) -> Dataset:
    """_read(cfg), kept on disk between server starts too (bundled and generated data): a new server whose first
    page opens on a cached result then loads its data without importing scikit-learn (1.1 s here).

    The file's name hashes the config, this module's source and the versions of numpy and scikit-learn, so a
    change to any of them makes the data again; so does a file that cannot be read. The folder keeps to
    DATASETS_MB, the least recently used going first.
    """
    from core.storage import cache_root, evict_least_recent, limit_bytes, private_dir, touch, write_atomically

    folder = cache_root() / "datasets"
    path = folder / f"{_kept_name(cfg)}.npz"
    try:
        ds = _from_npz(path)
        touch(path)
        return ds
    except Exception:  # not kept yet, or damaged: made again
        pass
    ds = _read(cfg)
    try:
        private_dir(folder)
        write_atomically(path, _to_npz(ds))
        evict_least_recent(folder, limit_bytes(DATASETS_LIMIT_ENV, DATASETS_MB), keep=(path,))
    except OSError:  # a cache folder that cannot be written: the data is made each time
        pass
    return ds


def _kept_name(cfg: DataConfig) -> str:
    h = hashlib.sha256(repr(cfg).encode())
    h.update(Path(__file__).read_bytes())
    for package in ("numpy", "scikit-learn"):
        h.update(metadata.version(package).encode())
    return h.hexdigest()[:24]


def _to_npz(ds: Dataset) -> bytes:
    """The data set as an .npz: its arrays as they are, everything else as JSON (no pickles)."""
    values = {f.name: getattr(ds, f.name) for f in fields(ds)}
    arrays = {name: v for name, v in values.items() if isinstance(v, np.ndarray)}
    described = {name: v for name, v in values.items() if name not in arrays}
    buffer = io.BytesIO()
    np.savez(buffer, described=np.array(json.dumps(described)), **arrays)
    return buffer.getvalue()


def _from_npz(path: Path) -> Dataset:
    with np.load(path, allow_pickle=False) as npz:
        values = json.loads(str(npz["described"]))
        values.update({name: npz[name] for name in npz.files if name != "described"})
    if values["image_shape"] is not None:
        values["image_shape"] = tuple(values["image_shape"])
    return Dataset(**values)


_remembered = functools.lru_cache(maxsize=16)(_kept)
GRID_STEPS = 60


def _grid(x: np.ndarray) -> np.ndarray:
    """A GRID_STEPS x GRID_STEPS lattice over the inputs' range plus a margin, row-major in (x2, x1)."""
    lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    margin = (hi - lo) * 0.1
    axes = [np.linspace(l - m, h + m, GRID_STEPS) for l, h, m in zip(lo, hi, margin)]
    x1, x2 = np.meshgrid(*axes)
    return np.column_stack([x1.ravel(), x2.ravel()])


def bundled_features(cfg: DataConfig):
    """(x, y, feature names, task, extras) of a data set bundled with scikit-learn or generated."""
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


# --- CSV: a local file (an upload saved under the cache root, or a path in a pair.json) ---

MAX_CSV_MB = 200  # a larger file is refused before it is read
MAX_CSV_COLUMNS = 2000  # pandas slows down quadratically in the number of (duplicate) header names
MAX_HEADER_BYTES = 1 << 20  # the header line must end within this many bytes
SHOWN_NAMES = 10  # column names quoted in one message
NAME_CHARS = 40  # characters of one column name, class or path quoted in a message
UPLOADS_MB = 200  # the uploads folder's size limit; DIVERGENCE_LAB_UPLOADS_MB overrides it
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def uploads_root() -> Path:
    """The folder that holds uploaded CSVs (private to this user, see save_upload)."""
    from core.storage import cache_root

    return cache_root() / "uploads"


def save_upload(content: bytes) -> str:
    """Keep an uploaded CSV on this server; returns its path (the value of data.csv_path).

    The file goes into a folder only this user can read (0700, the file 0600), named by its
    content, so the same upload twice is one file. The folder keeps to its size limit, the
    least recently used uploads going first (loading a CSV pair's data counts as a use).
    """
    from core.storage import evict_least_recent, limit_bytes, private_dir, touch, write_atomically

    folder = private_dir(uploads_root())
    path = folder / f"{hashlib.sha256(content).hexdigest()[:16]}.csv"
    if path.is_file() and path.stat().st_size == len(content):
        touch(path)
    else:
        write_atomically(path, content)
    evict_least_recent(folder, limit_bytes("DIVERGENCE_LAB_UPLOADS_MB", UPLOADS_MB), keep=(path,))
    return str(path)


def _is_upload(path: str) -> bool:
    try:
        return Path(os.path.abspath(path)).parent == Path(os.path.abspath(uploads_root()))
    except (ValueError, OSError):
        return False


def _short(text, limit: int = NAME_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _short_path(path: str, limit: int = 80) -> str:
    """A path as a message quotes it: its end kept, where the file's name is."""
    return repr(path if len(path) <= limit else "…" + path[-(limit - 1):])


def _name(name) -> str:
    """A column name as a message shows it: quoted and shortened."""
    return repr(_short(name))


def _names(names) -> str:
    """The first few names, each shortened, for a message."""
    names = list(names)
    shown = ", ".join(_name(n) for n in names[:SHOWN_NAMES])
    return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN_NAMES else "")


def _open_local(path: str):
    """The file at `path` opened for reading in binary, or a ConfigError: local regular files only."""
    where = "data.csv_path"
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: no file given")
    if _URL.match(path):
        raise ConfigError(f"{where}: only local files are read, not URLs ({_short(path, 80)!r}); "
                          "download the file and give its path")
    shown = _short_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except FileNotFoundError:
        if _is_upload(path):
            raise ConfigError(f"{where}: the uploaded file is no longer on this server; upload it again") from None
        raise ConfigError(f"{where}: no file at {shown}") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: {shown} is a folder, not a CSV file") from None
    except (OSError, ValueError) as e:  # permission, a path through a file, an embedded NUL byte
        raise ConfigError(f"{where}: cannot read {shown} ({getattr(e, 'strerror', None) or e})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{where}: {shown} is a folder, not a CSV file")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: {shown} is not a regular file")
        if info.st_size > MAX_CSV_MB * 1024 * 1024:
            raise ConfigError(f"{where}: the file is {info.st_size / 1024 / 1024:,.0f} MB; "
                              f"at most {MAX_CSV_MB} MB are read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_header(f) -> None:
    """Refuse, before pandas parses it, a file whose header line is endless or names too many columns."""
    head = f.read(MAX_HEADER_BYTES + 1)
    f.seek(0)
    if b"\0" in head:
        raise ConfigError("data.csv_path: the file holds binary data, not text; is it a CSV?")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) <= MAX_HEADER_BYTES)
    except UnicodeDecodeError:
        raise ConfigError("data.csv_path: the file is not UTF-8 text; is it a CSV?") from None
    lines = re.split(rb"\r\n|\r|\n", head)
    complete = lines if len(head) <= MAX_HEADER_BYTES else lines[:-1]  # the last piece may be cut
    header = next((line for line in complete if line.strip()), None)
    if header is None:
        if len(head) > MAX_HEADER_BYTES:
            raise ConfigError(f"data.csv_path: no header line within the first {MAX_HEADER_BYTES // 1024 // 1024} MB; "
                              "is it a CSV?")
        return  # empty or blank: pandas says so
    text = header.decode("utf-8-sig")
    try:
        n = len(next(csv.reader([text]), []))
    except csv.Error:
        n = text.count(",") + 1
    if n > MAX_CSV_COLUMNS:
        raise ConfigError(f"data.csv: {n:,} columns; at most {MAX_CSV_COLUMNS:,} are read")


def read_csv_frame(path: str, nrows: int | None = None):
    """The CSV at `path` (a local file, never a URL) as pandas reads it, or a ConfigError saying why not.

    The file is opened here and pandas gets the open file, so nothing but this file is read.
    """
    import pandas as pd

    with _open_local(path) as f:
        _check_header(f)
        try:
            return pd.read_csv(f, nrows=nrows)
        except pd.errors.EmptyDataError:
            raise ConfigError("data.csv_path: the file is empty (no header, no rows)") from None
        except UnicodeDecodeError:
            raise ConfigError("data.csv_path: the file is not UTF-8 text; is it a CSV?") from None
        except MemoryError:
            raise ConfigError("data.csv_path: the file does not fit in memory") from None
        except Exception as e:  # pandas' parser raises several kinds; each means "not a CSV we can read"
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConfigError(f"data.csv_path: the file is not a readable CSV ({_short(reason, 120)})") from None


def csv_columns(path: str) -> list[str]:
    """The CSV's column names (for choosing the target), or a ConfigError."""
    columns = [str(c) for c in read_csv_frame(path, nrows=0).columns]
    if _is_upload(path):
        from core.storage import touch

        touch(Path(path))
    return columns


def _csv(path: str, target: str):
    frame = read_csv_frame(path)
    if _is_upload(path):  # in use: the upload folder's eviction takes the least recently used first
        from core.storage import touch

        touch(Path(path))
    return csv_frame_features(frame, target)


def csv_frame_features(frame, target: str):
    """Features and labels from a CSV's data frame, or a ConfigError saying what is wrong with it."""
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise ConfigError(f"data.csv: the file has a header ({len(columns)} column{'s' * (len(columns) != 1)}) "
                          "but no data rows")
    if target not in frame.columns:
        raise ConfigError(f"data.csv_target: no column {_short(target)!r}; the columns are {_names(columns)}")
    frame = frame.dropna(subset=[target])
    features = frame.drop(columns=[target])
    bad = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise ConfigError(f"data.csv: non-numeric feature column(s) {_names(bad)}; encode or drop them")
    if features.shape[1] == 0:
        raise ConfigError("data.csv: no feature columns besides the target")
    if len(frame) < MIN_CSV_ROWS:
        raise ConfigError(f"data.csv: {len(frame)} rows with a target; at least {MIN_CSV_ROWS} are needed")
    x = features.to_numpy(dtype=np.float64)
    names = [str(c) for c in features.columns]
    infinite = [n for n, inf in zip(names, np.isinf(x).any(axis=0)) if inf]
    if infinite:
        raise ConfigError(f"data.csv: infinite values (inf, -inf or too large for float64) in column(s) "
                          f"{_names(infinite)}; replace them or leave those cells empty (missing)")
    empty = [n for n, none in zip(names, np.isnan(x).all(axis=0)) if none]
    if empty:
        raise ConfigError(f"data.csv: column(s) {_names(empty)} hold no values; drop them")
    labels = frame[target]
    numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
    if numeric and np.isinf(labels.to_numpy(dtype=np.float64)).any():
        raise ConfigError(f"data.csv_target: column {_short(target)!r} holds infinite values (inf, -inf or too large "
                          "for float64); replace them or leave those cells empty (rows without a target are dropped)")
    is_class = not numeric or (np.allclose(labels, np.round(labels)) and labels.nunique() <= MAX_CSV_CLASSES)
    if not is_class:
        return x, labels.to_numpy(dtype=np.float64), names, "regression", {"description": "uploaded CSV (regression)"}
    classes, y = np.unique(labels.astype(str) if not numeric else labels, return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"data.csv_target: column {_short(target)!r} has a single class; nothing to learn")
    return x, y.astype(np.int64), names, "classification", {
        "description": f"uploaded CSV ({len(classes)} classes)", "class_names": [str(c) for c in classes]}
