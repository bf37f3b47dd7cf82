"""Data loading and each preprocessing variant against an independent reference."""

import dataclasses
import os
import stat
from pathlib import Path

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


def _same_dataset(x: data.Dataset, y: data.Dataset) -> bool:
    """Every field equal, arrays bitwise (dtype, shape and values, NaN holes included)."""
    for f in dataclasses.fields(x):
        a, b = getattr(x, f.name), getattr(y, f.name)
        if isinstance(a, np.ndarray):
            if not (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                    and a.tobytes() == b.tobytes()):
                return False
        elif a != b:
            return False
    return True


def test_a_data_set_is_kept_on_disk_and_a_new_process_reads_it_back_without_scikit_learn(tmp_path, monkeypatch):
    """A new server's first page that opens on a cached result loads its data from the kept copy."""
    import json
    import subprocess
    import sys

    monkeypatch.setenv("DIVERGENCE_LAB_CACHE", str(tmp_path))
    for cfg in (DataConfig(dataset="digits", missing_rate=0.1), DataConfig(dataset="moons", n_samples=200)):
        made = data._read(cfg)  # the reference: made now, nothing kept
        data._kept(cfg)  # made again, and kept
        assert _same_dataset(data._kept(cfg), made), cfg  # read back from the kept copy
    assert len(list((tmp_path / "datasets").glob("*.npz"))) == 2
    code = ("import json, sys\nfrom core import data\nfrom core.config import DataConfig\n"
            "ds = data.load(DataConfig(dataset='digits', missing_rate=0.1))\n"
            "print(json.dumps([ds.fingerprint(), ds.image_shape, ds.class_names, 'sklearn' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    digits = data._read(DataConfig(dataset="digits", missing_rate=0.1))
    assert json.loads(done.stdout) == [digits.fingerprint(), [8, 8], digits.class_names, False]


def test_a_kept_data_set_is_made_again_for_another_data_module_or_library_version(tmp_path, monkeypatch):
    """What the README promises: the copy kept under one core/data.py, numpy and scikit-learn is not served
    under another (each makes a copy of its own)."""
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE", str(tmp_path))
    cfg = DataConfig(dataset="moons", n_samples=200)
    kept = tmp_path / "datasets"

    def copies() -> int:
        data._kept(cfg)
        return len(list(kept.glob("*.npz")))

    assert copies() == 1 and copies() == 1  # the same module and versions: read back, not made again
    edited = tmp_path / "data.py"
    edited.write_text(Path(data.__file__).read_text() + "\n# an edit\n")
    monkeypatch.setattr(data, "__file__", str(edited))
    assert copies() == 2
    installed = data.metadata.version
    monkeypatch.setattr(data.metadata, "version", lambda package: installed(package) + ".post1")  # an upgrade
    assert copies() == 3


def test_a_damaged_kept_data_set_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVERGENCE_LAB_CACHE", str(tmp_path))
    cfg = DataConfig(dataset="moons", n_samples=200)
    data._kept(cfg)
    (kept,) = (tmp_path / "datasets").glob("*.npz")
    kept.write_bytes(kept.read_bytes()[:200])
    assert _same_dataset(data._kept(cfg), data._read(cfg))
    assert _same_dataset(data._from_npz(kept), data._read(cfg))  # and kept whole again


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
    ("a,b,y\n" + "\n".join(f"{i},x{i},{i % 2}" for i in range(20)), "y", "non-numeric feature column(s) 'b'"),
    ("a,y\n" + "\n".join(f"{i},1" for i in range(20)), "y", "has a single class"),
    ("a,y\n1,0\n2,1\n3,0", "y", "3 rows with a target; at least 10 are needed"),
    ("a,y\n1,0\n", "z", "no column 'z'"),
    ("", "y", "the file is empty"),
    ("\n\n  \n", "y", "the file is empty"),
    ("a,b,y\n", "y", "the file has a header (3 columns) but no data rows"),
    ("a,b,y\n" + "\n".join(f"{i},{'inf' if i == 3 else i},{i % 2}" for i in range(20)), "y",
     "infinite values (inf, -inf or too large for float64) in column(s) 'b';"),
    ("a,b,y\n" + "\n".join(f"{'-inf' if i == 3 else i},{'1e999' if i == 4 else i},{i % 2}" for i in range(20)), "y",
     "in column(s) 'a', 'b';"),
    ("a,y\n" + "\n".join(f"{i},{'inf' if i == 3 else i * 0.5}" for i in range(30)), "y",
     "data.csv_target: column 'y' holds infinite values"),
    ("a,b,y\n" + "\n".join(f"{i},,{i % 2}" for i in range(20)), "y", "column(s) 'b' hold no values"),
    ('a,y\n1,"0\n', "y", "not a readable CSV (Error tokenizing data"),
])
def test_broken_csvs_get_clear_errors(tmp_path, text, target, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load(DataConfig(dataset="csv", csv_path=_csv(tmp_path, text), csv_target=target))


def _load_csv(path, target="y", **kw):
    return data.load(DataConfig(dataset="csv", csv_path=str(path), csv_target=target, **kw))


def _rows(n=20, header="a,b,y"):
    return header + "\n" + "\n".join(f"{i},{i * 3 % 7},{i % 2}" for i in range(n)) + "\n"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/data.csv", "https://example.com/x.csv", "ftp://host/x.csv",
                                 "s3://bucket/x.csv", "file:///etc/hostname", "HTTP://HOST/X.CSV"])
def test_csv_path_reads_local_files_only(url, monkeypatch):
    def fetch(*args, **kwargs):  # pandas would fetch a URL; it must never be asked to
        raise AssertionError("pandas was handed the path")

    monkeypatch.setattr(pd, "read_csv", fetch)
    with pytest.raises(ConfigError, match=r"data.csv_path: only local files are read, not URLs"):
        _load_csv(url)


def test_pandas_gets_an_open_file_not_the_path(tmp_path, monkeypatch):
    seen = []
    original = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda source, **kw: seen.append(source) or original(source, **kw))
    _load_csv(_csv(tmp_path, _rows()))
    assert seen and all(not isinstance(s, (str, bytes)) and hasattr(s, "read") for s in seen)


def test_a_missing_file_a_folder_and_a_fifo_get_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.csv_path: no file at '.*nowhere.csv'"):
        _load_csv(tmp_path / "nowhere.csv")
    with pytest.raises(ConfigError, match="is a folder, not a CSV file"):
        _load_csv(tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        _load_csv(str(tmp_path / "a\0b.csv"))
    deep = tmp_path.joinpath(*["a-folder-with-a-long-name"] * 6, "nowhere.csv")
    with pytest.raises(ConfigError, match=r"no file at '…[^']*/a-folder-with-a-long-name/nowhere.csv'$"):
        _load_csv(deep)  # a long path keeps its end, where the file's name is
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.csv")  # opening it for reading would wait for a writer
        with pytest.raises(ConfigError, match="is not a regular file"):
            _load_csv(tmp_path / "pipe.csv")


def test_binary_garbage_is_not_a_csv(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(1, 256)) * 64)
    with pytest.raises(ConfigError, match="data.csv_path: the file is not UTF-8 text; is it a CSV"):
        _load_csv(path)
    path.write_bytes(b"a,y\n" + b"\x00\x01\x02\x03" * 1000)  # valid UTF-8, but no text
    with pytest.raises(ConfigError, match="data.csv_path: the file holds binary data, not text"):
        _load_csv(path)


def test_an_endless_first_line_or_too_many_columns_is_refused_before_parsing(tmp_path):
    path = tmp_path / "line.csv"
    path.write_bytes(b"a" * (data.MAX_HEADER_BYTES + 10))
    with pytest.raises(ConfigError, match="no header line within the first 1 MB"):
        _load_csv(path)
    n = data.MAX_CSV_COLUMNS + 1  # duplicate names: pandas would take minutes over 100,000 of them
    path.write_text(",".join(["1"] * n) + "\n" + ",".join(["1"] * n) + "\n")
    with pytest.raises(ConfigError, match=f"data.csv: {n:,} columns; at most {data.MAX_CSV_COLUMNS:,} are read"):
        _load_csv(path)


def test_too_large_a_file_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_CSV_MB", 0)
    with pytest.raises(ConfigError, match="the file is 0 MB; at most 0 MB are read"):
        _load_csv(_csv(tmp_path, _rows()))


def test_messages_quote_few_column_names_and_each_one_short(tmp_path):
    names = [f"<b>col{i}</b> [x](http://h/{i}) " + "z" * 80 for i in range(30)]
    rows = "\n".join(",".join(["txt"] * 30 + [str(i % 2)]) for i in range(20))
    path = _csv(tmp_path, ",".join(names + ["y"]) + "\n" + rows)
    with pytest.raises(ConfigError) as e:
        _load_csv(path)
    message = str(e.value)
    assert message.startswith("data.csv: non-numeric feature column(s) '<b>col0</b>") and "... (30 in all)" in message
    assert "col9<" in message and "col10<" not in message and len(message) < 10 * (data.NAME_CHARS + 4) + 120
    with pytest.raises(ConfigError) as e:
        _load_csv(path, target="nope\n" * 50)
    assert "(31 in all)" in str(e.value) and len(str(e.value)) < 10 * (data.NAME_CHARS + 4) + 150


def test_a_target_is_named_short_and_its_values_not_at_all(tmp_path):
    rows = "\n".join(f"{i},{'x' * 500}" for i in range(20))
    with pytest.raises(ConfigError, match=r"^data.csv_target: column 'yyy.{36}…' has a single class; nothing to learn$"):
        _load_csv(_csv(tmp_path, "a," + "y" * 100 + "\n" + rows), target="y" * 100)


def test_a_small_csv_with_more_classes_than_test_rows_splits_unstratified(tmp_path):
    rows = "\n".join(f"{i},{i // 2}" for i in range(12))  # 6 classes of 2 rows; 3 test rows
    ds = _load_csv(_csv(tmp_path, "a,y\n" + rows), test_fraction=0.2)
    assert ds.n_classes == 6 and len(ds.x_test) == 3 and len(ds.x_train) == 9


def test_uploads_are_private_named_by_content_and_touched_when_loaded(tmp_path):
    content = _rows().encode()
    path = Path(data.save_upload(content))
    assert path.parent == tmp_path / "cache" / "uploads" and path.read_bytes() == content
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert data.save_upload(content) == str(path) and len(list(path.parent.iterdir())) == 1
    assert data.csv_columns(str(path)) == ["a", "b", "y"]
    os.utime(path, (1_000_000, 1_000_000))
    ds = _load_csv(path)
    assert ds.feature_names == ["a", "b"] and path.stat().st_mtime > 1_000_000  # a use: evicted last

    own = Path(_csv(tmp_path, _rows()))  # a file of the user's own is read, never touched
    os.utime(own, (1_000_000, 1_000_000))
    _load_csv(own)
    assert own.stat().st_mtime == 1_000_000


def test_uploads_keep_to_their_size_limit_least_recently_used_first(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVERGENCE_LAB_UPLOADS_MB", "0.003")  # 3,145 bytes: two of these files fit
    paths = []
    for i in range(2):
        paths.append(Path(data.save_upload((_rows(200, f"a,b{i},y")).encode())))
        os.utime(paths[-1], (1_000_000 + i, 1_000_000 + i))
    assert 1_400 < paths[0].stat().st_size < 1_600 and paths[0].exists()
    _load_csv(paths[0])  # loading touches the oldest: the eviction takes the other one
    path = Path(data.save_upload(_rows(200, "a,b2,y").encode()))
    assert path.exists() and paths[0].exists() and not paths[1].exists()
    with pytest.raises(ConfigError, match="data.csv_path: the uploaded file is no longer on this server; upload it "
                                          "again"):
        _load_csv(paths[1])
    with pytest.raises(ConfigError, match="the uploaded file is no longer on this server"):
        data.csv_columns(str(paths[1]))


def test_keras_normalization_matches_scikit_learn(cancer):
    keras = pytest.importorskip("keras")
    from core.engine_keras import keras_normalizer

    x_train, _, x_test, _ = preprocess(cancer, PreprocessConfig(scaler="keras_normalization"), keras_normalizer(keras))
    ref = StandardScaler().fit(cancer.x_train.astype(np.float32))
    np.testing.assert_allclose(x_train, ref.transform(cancer.x_train), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x_test, ref.transform(cancer.x_test), rtol=1e-4, atol=1e-4)
