"""Property-based tests: random and hostile links and pair configs give a valid pair or a clear error,
never an unhandled exception; small random pairs, diverging or not, render on every page.

The parser properties run hundreds of examples (no training). The pair-level fuzz trains
real pairs, so it draws a few: derandomized in CI (the same few every run), random with
HYPOTHESIS_PROFILE=explore.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import ConfigError, DataConfig, PairConfig, RunConfig, run_paths
from core.factors import BY_PATH, DATA_RULES, Choice, Layers, Number, make_pair, parse_pair
from ui import state

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=200)
settings.load_profile("ci")

KEYS = ([f"data.{name}" for name in DATA_RULES] + [f"a.{p}" for p in run_paths()]
        + [f"b.{p}" for p in run_paths()] + ["init"])
HOSTILE = st.sampled_from(["", " ", "nan", "inf", "-inf", "1e309", "-0", "1" * 400, "0x10", "true", "None",
                           "![px](http://127.0.0.1:9/p.png)", "<script>x</script>", "64,,32", "9" * 30,
                           "\x00", "ü", "1,2,3,4,5,6,7", "-1", "1e-400"])


def _valid_text(path: str) -> st.SearchStrategy:
    allowed = BY_PATH[path].allowed
    if isinstance(allowed, Choice):
        return st.sampled_from([state.encode(o) for o in allowed.options])
    if isinstance(allowed, Number):
        values = st.integers(int(allowed.lo), int(allowed.hi)) if allowed.integer else st.floats(allowed.lo, allowed.hi)
        return values.map(state.encode)
    assert isinstance(allowed, Layers)
    return st.lists(st.integers(1, 2000), min_size=0, max_size=8).map(state.encode)


@st.composite
def link_params(draw) -> dict[str, str]:
    keys = draw(st.lists(st.one_of(st.sampled_from(KEYS), st.text(max_size=30)), max_size=8, unique=True))
    params = {}
    for key in keys:
        path = key.partition(".")[2]
        options = [HOSTILE, st.text(max_size=40)]
        if path in BY_PATH:
            options.append(_valid_text(path))
        params[key] = draw(st.one_of(options))
    return params


@settings(max_examples=300, deadline=None)
@given(link_params())
def test_any_link_gives_a_runnable_pair_and_plain_warnings(params):
    pair, warnings = state.from_params(params)
    assert isinstance(pair, PairConfig)
    assert make_pair(pair.data, pair.a, dict(pair.b_differs), pair.b_starts_from_a_init) == pair  # valid as is
    assert all(isinstance(w, str) and len(w) < 1000 for w in warnings)
    assert state.from_params(state.to_params(pair))[0] == pair  # the link the app writes back reads the same


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=12)
SECTIONS = {f.name: [p.split(".")[1] for p in run_paths() if p.startswith(f"{f.name}.")]
            for f in __import__("dataclasses").fields(RunConfig)}


@st.composite
def pair_dicts(draw) -> dict:
    def fields(names):
        chosen = draw(st.lists(st.sampled_from(names), max_size=4, unique=True))
        return {name: draw(JSON) for name in chosen}

    raw = {}
    if draw(st.booleans()):
        raw["data"] = fields(list(DATA_RULES))
    if draw(st.booleans()):
        raw["a"] = {section: fields(names) for section, names in SECTIONS.items() if draw(st.booleans())}
    if draw(st.booleans()):
        raw["b_differs"] = {path: draw(JSON) for path in draw(st.lists(st.sampled_from(run_paths()), max_size=3))}
    if draw(st.booleans()):
        raw["b_starts_from_a_init"] = draw(JSON)
    return draw(st.one_of(st.just(raw), JSON))


@settings(max_examples=300, deadline=None)
@given(pair_dicts())
def test_any_pair_json_gives_a_valid_pair_or_a_config_error(raw):
    try:
        pair = parse_pair(raw)
    except ConfigError as e:
        assert str(e)
        return
    assert parse_pair(json.loads(pair.to_json())) == pair  # what the app hands out reads back the same


def test_a_number_too_large_for_a_float_is_a_config_error():
    with pytest.raises(ConfigError, match="out of range"):
        parse_pair({"a": {"training": {"epochs": 10**400}}})


# The pair-level fuzz: small random pairs through real workers, every page drawn from each result.
PAGES = ["pages/overview.py", "pages/loss_curves.py", "pages/weights.py", "pages/predictions.py",
         "pages/attribution.py", "pages/reproduce.py"]
LEARNING_RATES = [0.001, 0.05, 1.0, 10.0, 30.0, 1e7]  # SGD on moons: fine, fine, fine, NaN at 3, at 2, at 1
B_FACTORS = {
    "optimizer.learning_rate": st.sampled_from(LEARNING_RATES),
    "optimizer.epsilon": st.sampled_from([1e-8, 1e-3]),
    "seeding.seed": st.integers(1, 5),
    "seeding.policy": st.sampled_from(["none", "explicit", "numpy_tf"]),
    "training.batch_order": st.sampled_from(["framework", "none"]),
    "training.epochs": st.integers(1, 3),
    "numerics.dtype": st.sampled_from(["float64", "mixed_float16"]),
    "preprocess.scaler": st.sampled_from(["none", "minmax", "standard_sample"]),
    "model.activation": st.sampled_from(["tanh", "gelu"]),
    "engine.name": st.sampled_from(["tensorflow", "tf_keras"]),
}


@st.composite
def small_pairs(draw) -> PairConfig:
    data = draw(st.sampled_from([DataConfig(dataset="moons", n_samples=120),
                                 DataConfig(dataset="diabetes"),
                                 DataConfig(dataset="breast_cancer", missing_rate=0.1)]))
    a = RunConfig().with_value("training.epochs", draw(st.integers(1, 3)))
    a = a.with_value("model.hidden", tuple(draw(st.lists(st.integers(1, 16), min_size=1, max_size=2))))
    a = a.with_value("optimizer.name", draw(st.sampled_from(["sgd", "adam"])))
    a = a.with_value("optimizer.learning_rate", draw(st.sampled_from(LEARNING_RATES)))
    paths = draw(st.lists(st.sampled_from(sorted(B_FACTORS)), min_size=0, max_size=2, unique=True))
    b = {path: draw(B_FACTORS[path]) for path in paths}
    try:
        return make_pair(data, a, b, draw(st.booleans()))
    except ConfigError:  # e.g. B's initial weights copied from A across a shape change
        return make_pair(data, a, b, False)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(pair=small_pairs())
def test_every_page_renders_for_small_random_pairs(pool, app_test_pages, pair):
    from streamlit.testing.v1 import AppTest

    from core.pair import run_pair

    result = run_pair(pair, pool)
    assert result.complete, {m: result.summary[m]["message"] for m in "ab"}
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.query_params.update(state.to_params(pair))
    at.run()  # a link to a cached pair opens on its result
    assert not at.exception and at.session_state["result"].summary == result.summary
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, pair, at.exception)
