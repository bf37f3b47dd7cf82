"""The mechanism sentences the app shows, checked by the runs they describe (real workers, tiny epochs)."""

import os
import subprocess
import sys

import pytest

from core.config import DataConfig
from core.factors import BY_PATH, make_pair, parse_run
from core.pair import run_pair

MOONS = DataConfig(dataset="moons", n_samples=200)
ENGINE = BY_PATH["engine.name"].mechanism


def _first_divergent_epoch(pool, a: dict, b: dict) -> int | None:
    result = run_pair(make_pair(MOONS, parse_run(a), b), pool, cache=False)
    assert result.complete
    return result.summary["compare"]["first_divergent_epoch"]


def test_keras3_and_tf_keras_take_the_same_steps_in_the_same_order(pool):
    assert "draw the same initial weights and take the same steps in the same batch order" in ENGINE
    fixed = {"training": {"epochs": 3, "batch_order": "fixed"}}
    assert _first_divergent_epoch(pool, fixed, {"engine.name": "tf_keras"}) is None  # bitwise equal throughout


def test_fits_own_shuffle_splits_keras3_and_tf_keras_from_epoch_2(pool):
    assert "fit's own shuffle gives them different orders from epoch 2" in ENGINE
    shuffled = {"training": {"epochs": 3, "batch_order": "framework"}}
    assert _first_divergent_epoch(pool, shuffled, {"engine.name": "tf_keras"}) == 2


def test_the_raw_loop_draws_other_initial_weights(pool):
    assert "the raw TensorFlow loop draws its initial weights with TensorFlow's random ops" in ENGINE
    assert _first_divergent_epoch(pool, {"training": {"epochs": 1}}, {"engine.name": "tensorflow"}) == 0


@pytest.mark.parametrize("legacy, module", [(None, "keras.src"), ("1", "tf_keras")])
def test_tf_keras_is_keras3_unless_legacy_keras_is_asked_for(legacy, module):
    assert "tf.keras itself is Keras 3 from TensorFlow 2.16 unless TF_USE_LEGACY_KERAS=1" in ENGINE
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", **({"TF_USE_LEGACY_KERAS": legacy} if legacy else {})})
    done = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(tf.__version__); "
                           "print(tf.keras.Sequential.__module__)"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    version, where = done.stdout.split()[-2:]
    assert tuple(map(int, version.split(".")[:2])) >= (2, 16) and where.startswith(module)
