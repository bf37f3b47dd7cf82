"""Property-based tests of the CSV reader: whatever a file holds, loading it gives a usable dataset or a
ConfigError that says what is wrong, never another exception.

Derandomized (the same examples every run, for CI); HYPOTHESIS_PROFILE=explore draws new ones.
"""

import collections
import csv
import io
import itertools
import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import data
from core.config import ConfigError, DataConfig

FIXED = os.environ.get("HYPOTHESIS_PROFILE") != "explore"
FUZZ = dict(deadline=None, derandomize=FIXED, database=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.one_of(
    st.sampled_from(["", " ", "y", "label", "a", "a", "**bold**", "<b>x</b>", "<script>alert(1)</script>",
                     "![px](http://127.0.0.1:9/p.png)", "[log in](http://x)", ":red[x]", "$x$", "a,b", '"q"',
                     "nan", "inf", "NA", "1", "1.5", "é", "🙂", "名前", "x" * 300, "line\nbreak", "Unnamed: 0"]),
    st.text(max_size=12))
CELLS = st.one_of(
    st.sampled_from(["", "nan", "NaN", "NA", "null", "inf", "-inf", "Infinity", "1e999", "-1e999", "1e308", "0",
                     "1", "-1", "2", "3", "0.5", "-3.5", "1e-320", "true", "False", "text", "x y", "9" * 30, "0x10",
                     " 1 ", "1,5", '"2"', "\t"]),
    st.integers(-5, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6))
_counter = itertools.count()
_folder = tempfile.mkdtemp(prefix="csv-fuzz-")


def _write(content: bytes) -> str:
    path = os.path.join(_folder, f"{next(_counter)}.csv")
    with open(path, "wb") as f:
        f.write(content)
    return path


@st.composite
def tables(draw) -> tuple[bytes, str]:
    """CSV-ish text and a target: a header of odd names, rows of odd cells, sometimes ragged, quoted or not.

    Most tables are near misses of a loadable one (their last column named as the target, most cells of
    the column's kind), so that the property covers both the errors and the data that loads.
    """
    n_features = draw(st.integers(1, 4))
    header = draw(st.lists(NAMES, min_size=n_features, max_size=n_features))
    target = draw(NAMES) + draw(st.sampled_from(["_target", ""]))
    header.append(target)
    n_rows = draw(st.sampled_from([0, 1, 9, 10, 11, 12, 15, 20, 30, 40, 60]))
    # The target is a float column twice as often as any other kind: that is the only kind that loads as a
    # regression, and with one in four some runs of 400 tables loaded 0 or 1 of them (random seeds, and once
    # the fixed seed under other timing), too few for the check below.
    kinds = draw(st.lists(st.sampled_from(["int", "float", "float", "mixed"]), min_size=n_features,
                          max_size=n_features)) + [draw(st.sampled_from(["class", "int", "float", "float", "mixed"]))]
    pool = {"int": st.integers(-3, 3).map(str), "class": st.sampled_from(["0", "1", "2", "", "a", "b"]),
            "float": st.one_of(st.floats(-1e6, 1e6).map(repr), st.sampled_from(["", "nan", "1e-300"])),
            "mixed": CELLS}
    noisy = draw(st.integers(0, 2)) == 0  # odd cells anywhere
    rows = [[draw(CELLS) if noisy and draw(st.integers(0, 60)) == 0 else draw(pool[kind]) for kind in kinds]
            for _ in range(n_rows)]
    if rows and draw(st.integers(0, 5)) == 0:  # one ragged row
        i = draw(st.integers(0, len(rows) - 1))
        rows[i] = rows[i][:-1] if draw(st.booleans()) else rows[i] + ["extra"]
    if draw(st.integers(0, 3)):
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        text = out.getvalue()
    else:  # unquoted: names and cells with commas, quotes or line breaks bend the table
        text = "\n".join(",".join(r) for r in [header, *rows])
    if draw(st.integers(0, 4)) == 0:
        target = draw(st.one_of(st.sampled_from(header), NAMES))
    return text.encode("utf-8", "surrogatepass"), target


def _check(path: str, target: str, **kw) -> str:
    try:
        ds = data.load(DataConfig(dataset="csv", csv_path=path, csv_target=target, **kw))
    except ConfigError as e:
        assert str(e) and len(str(e)) < 1200, str(e)  # short: a few names, each cut
        return "refused"
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float64 and not np.isinf(x).any()  # finite or NaN (a missing cell)
    for y in (ds.y_train, ds.y_test):
        assert np.isfinite(y).all()
        if ds.task == "classification":
            assert y.dtype == np.int64 and 0 <= y.min() and y.max() < ds.n_classes
    assert len(ds.x_test) >= 1 and len(ds.x_train) >= 2
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    assert ds.x_train.shape[1] == ds.x_test.shape[1] == len(ds.feature_names) >= 1
    return ds.task


@settings(max_examples=150, **FUZZ)
@given(st.binary(max_size=3000), NAMES)
def test_random_bytes_load_or_say_why_not(content, target):
    _check(_write(content), target)


def test_random_csv_text_loads_or_says_why_not():
    outcomes = collections.Counter()

    @settings(max_examples=400, **FUZZ)
    @given(tables(), st.sampled_from([0.05, 0.2, 0.5, 0.9]), st.sampled_from([0.0, 0.3]), st.integers(0, 3))
    def check(table, test_fraction, missing_rate, split_seed):
        content, target = table
        outcomes[_check(_write(content), target, test_fraction=test_fraction, missing_rate=missing_rate,
                        split_seed=split_seed)] += 1

    check()
    # the tables are not all errors: both kinds of task load (else the property says little)
    assert outcomes["classification"] >= 10 and outcomes["regression"] >= 2, outcomes
