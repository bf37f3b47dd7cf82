"""Config validation, JSON round trip and the factor registry (no TensorFlow)."""

import json

import pytest

from core.config import ConfigError, DataConfig, PairConfig, RunConfig, pair_from_dict, run_paths
from core.factors import FACTORS, format_value, make_pair, not_applied, parse_pair, parse_run
from core.presets import PRESETS, preset


def test_every_run_field_has_one_factor_with_its_default_allowed():
    assert sorted(f.path for f in FACTORS) == sorted(run_paths())
    for f in FACTORS:
        assert f.allowed.check(f.default, f.path) == f.default
        assert f.mechanism.endswith(".") and f.label


def test_json_round_trip_is_exact():
    pair = make_pair(DataConfig(dataset="moons", noise=0.3), parse_run({"model": {"hidden": [8, 4]}}),
                     {"optimizer.epsilon": 1e-8, "engine.name": "tf_keras"}, True)
    again = parse_pair(json.loads(pair.to_json()))
    assert again == pair
    assert again.b.optimizer.epsilon == 1e-8 and again.b.engine.name == "tf_keras"
    assert again.a.optimizer.epsilon == 1e-7 and again.a.model.hidden == (8, 4)


def test_b_differs_drops_values_equal_to_a_and_is_sorted():
    pair = make_pair(DataConfig(), RunConfig(), {"seeding.seed": 0, "optimizer.learning_rate": 0.01,
                                                 "engine.name": "tensorflow"})
    assert pair.b_differs == (("engine.name", "tensorflow"), ("optimizer.learning_rate", 0.01))


@pytest.mark.parametrize("raw, message", [
    ({"a": {"optimizer": {"epsilon": -1}}}, "optimizer.epsilon: -1 is out of range; allowed 1e-12 to 1"),
    ({"a": {"optimizer": {"name": "lion"}}}, "optimizer.name: 'lion' is not allowed; choose one of 'adam'"),
    ({"a": {"training": {"epochs": 2.5}}}, "training.epochs: expected an integer, got 2.5"),
    ({"a": {"model": {"hidden": []}}}, "model.hidden: expected 1 to 6 hidden layer sizes"),
    ({"a": {"model": {"batch_norm": "yes"}}}, "model.batch_norm: 'yes' is not allowed"),
    ({"a": {"optimizer": {"nope": 1}}}, "unknown factor 'optimizer.nope'"),
    ({"a": {"weird": {}}}, "unknown section 'weird'"),
    ({"data": {"dataset": "mnist"}}, "data.dataset: 'mnist' is not allowed"),
    ({"data": {"dataset": "csv"}}, "the csv dataset needs csv_path and csv_target"),
    ({"b_differs": {"optimizer.learning_rate": float("nan")}}, "optimizer.learning_rate: nan is out of range"),
    ({"b_differs": {"model.hidden": [8]}, "b_starts_from_a_init": True}, "must have the same weight shapes"),
    ({"a": {"engine": {"name": "tensorflow"}, "model": {"kind": "cnn"}}}, "tensorflow engine implements dense"),
    ({"a": {"model": {"kind": "gru"}}}, "gru reads windows of a series"),
    ({"a": {"optimizer": {"clipnorm": 1.0, "clipvalue": 0.5}}}, "clipnorm or clipvalue, not both"),
    ({"extra": 1}, "unknown pair field(s) extra"),
])
def test_bad_values_are_rejected_with_the_field_and_what_is_allowed(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_pair(raw)
    assert message in str(e.value)


def test_factors_the_engine_ignores_are_reported():
    run = parse_run({"engine": {"raw_optimizer": "textbook"}, "optimizer": {"momentum": 0.5}})
    assert not_applied(run) == {"engine.raw_optimizer": "the keras engine does not use it",
                                "optimizer.momentum": "adam does not use it"}


def test_numbers_display_as_people_read_them():
    assert format_value("optimizer.learning_rate", 0.001) == "0.001"
    assert format_value("optimizer.epsilon", 1e-7) == "1e-07"
    assert format_value("optimizer.epsilon", 1e-8) == "1e-08"
    assert format_value("numerics.op_determinism", True) == "on"
    assert format_value("model.hidden", (64, 32)) == "64, 32"
    assert format_value("engine.name", "tf_keras") == "legacy tf.keras (tf_keras, Keras 2)"
    assert format_value("optimizer.name", "adam") == "adam"  # an option that says enough shows as itself


def test_every_preset_is_a_valid_pair():
    for name, p in PRESETS.items():
        pair = p.pair(epochs=3)
        assert isinstance(pair, PairConfig) and pair.a.training.epochs == 3, name
        assert parse_pair(json.loads(pair.to_json())) == pair
    assert dict(preset("adam-epsilon").pair().b_differs) == {"optimizer.epsilon": 1e-8}
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("nope")


def test_a_pair_built_in_one_process_round_trips_and_refuses_what_one_process_cannot_hold():
    pair = preset("two-models-one-process").pair()
    assert pair.same_process and parse_pair(json.loads(pair.to_json())) == pair
    assert "same_process" not in preset("adam-epsilon").pair().to_dict()  # older pairs read as they did
    keras_run = RunConfig()
    with pytest.raises(ConfigError, match="one engine, seeding and numerics for both models, but B differs in "
                                          "engine.name, numerics.dtype"):
        make_pair(DataConfig(), keras_run, {"engine.name": "tf_keras", "numerics.dtype": "float64"}, same_process=True)
    with pytest.raises(ConfigError, match="cannot also copy A's"):
        make_pair(DataConfig(), keras_run, {}, b_starts_from_a_init=True, same_process=True)
    with pytest.raises(ConfigError, match="built with keras and tf.keras"):
        make_pair(DataConfig(), keras_run.with_value("engine.name", "tensorflow"), {}, same_process=True)
    assert make_pair(DataConfig(), keras_run, {"optimizer.epsilon": 1e-8}, same_process=True).same_process


def test_a_pair_read_back_from_its_dict_is_the_pair():
    for name, p in PRESETS.items():
        pair = p.pair()
        assert pair_from_dict(json.loads(pair.to_json())) == pair, name
