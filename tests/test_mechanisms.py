"""The mechanism sentences the app shows, checked by the runs they describe (real workers, tiny epochs)."""

import json
import os

import pytest

from core.config import ConfigError, DataConfig
from core.diagnosis import MECHANISMS
from core.export import not_reproducible
from core.factors import BY_PATH, make_pair, parse_run
from core.pair import run_pair
from core.presets import ALL_PRESETS, PRESETS
from helpers import FreshPython

MOONS = DataConfig(dataset="moons", n_samples=200)
ENGINE = BY_PATH["engine.name"].mechanism


def _first_divergent_epoch(pool, cache, a: dict, b: dict) -> int | None:
    """A against B alone (not the diagnosis's runs); runs another test needs too are trained once (`cache`)."""
    result = run_pair(make_pair(MOONS, parse_run(a), b), pool, cache=cache, checks=False)
    assert result.complete
    return result.summary["compare"]["first_divergent_epoch"]


def test_keras3_and_tf_keras_take_the_same_steps_in_the_same_order(pool, shared_cache):
    assert "draw the same initial weights and take the same steps in the same batch order" in ENGINE
    fixed = {"training": {"epochs": 3, "batch_order": "fixed"}}
    assert _first_divergent_epoch(pool, shared_cache, fixed, {"engine.name": "tf_keras"}) is None  # bitwise throughout


def test_fits_own_shuffle_splits_keras3_and_tf_keras_from_epoch_2(pool, shared_cache):
    assert "fit's own shuffle gives them different orders from epoch 2" in ENGINE
    shuffled = {"training": {"epochs": 3, "batch_order": "framework"}}
    assert _first_divergent_epoch(pool, shared_cache, shuffled, {"engine.name": "tf_keras"}) == 2


def test_the_raw_loop_draws_other_initial_weights(pool, shared_cache):
    assert "the raw TensorFlow loop draws its initial weights with TensorFlow's random ops" in ENGINE
    assert _first_divergent_epoch(pool, shared_cache, {"training": {"epochs": 1}}, {"engine.name": "tensorflow"}) == 0


@pytest.mark.parametrize("other", ["keras_jax", "keras_torch"])
def test_keras_3_on_another_backend_draws_other_initial_weights_from_the_same_seed(pool, shared_cache, other):
    assert "Keras 3 on JAX or PyTorch draws them from that backend's own random stream" in ENGINE
    assert _first_divergent_epoch(pool, shared_cache, {"training": {"epochs": 1}}, {"engine.name": other}) == 0


@pytest.mark.parametrize("legacy, module", [(False, "keras.src"), (True, "tf_keras")])
def test_tf_keras_is_keras3_unless_legacy_keras_is_asked_for(fresh_facts, legacy, module):
    assert "tf.keras itself is Keras 3 from TensorFlow 2.16 unless TF_USE_LEGACY_KERAS=1" in ENGINE
    version, where = fresh_facts(legacy)["tf.keras"]
    assert tuple(map(int, version.split(".")[:2])) >= (2, 16) and where.startswith(module)


# The mechanism each preset's verdict must name, measured from the preset's own runs (2 epochs).
# oneDNN's effect depends on the CPU's kernels: on some CPUs only the forward pass over the test
# set rounds differently, on others nothing does; either is a measured, named answer.
PRESET_MECHANISM = {
    "keras3-vs-tf-keras": {"batch_order"},
    "two-models-one-process": {"initial_weights"},
    "tf-seed-not-enough": {"initial_weights"},
    "adam-epsilon": {"update_arithmetic"},
    "fit-vs-raw-loop": {"update_arithmetic"},
    "population-vs-sample-std": {"preprocessing"},
    "mean-vs-median-impute": {"preprocessing"},
    "float32-vs-float64": {"numerics"},
    "xla-on-off": {"numerics"},
    "batch-order": {"batch_order"},
    "onednn-on-off": {"numerics", "none"},
    "same-seed-two-backends": {"initial_weights"},
    "two-backends-aligned": {"numerics"},
    "run-it-twice": {"none"},
    "custom-layer": {"initial_weights"},
    "tf32-vs-float32": {"numerics"},  # (with a GPU only)
    "gpu-vs-cpu": {"numerics"},
}


def test_the_table_covers_every_preset():
    assert set(PRESET_MECHANISM) == set(ALL_PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))  # those this machine can run
def test_each_presets_verdict_names_the_mechanism_its_runs_show(pool, shared_cache, name):
    result = run_pair(PRESETS[name].pair(epochs=2), pool, cache=shared_cache)
    diagnosis = result.summary["diagnosis"]
    assert diagnosis["mechanism"] in PRESET_MECHANISM[name], diagnosis["sentence"]
    assert diagnosis["name"] == MECHANISMS[diagnosis["mechanism"]]
    c = result.summary["compare"]
    initial = {n for n, d in c["per_epoch"][0]["layers"].items() if d["max_abs"] != 0}
    # The evidence the sentence rests on, read off the comparison independently.
    if name == "keras3-vs-tf-keras":
        assert c["first_divergent_epoch"] == 2 and "With one fixed batch order A and B are bitwise identical" in \
            diagnosis["sentence"]
        # What each worker's own TensorFlow says tf.keras is (the Overview's environment table shows it).
        assert result.summary["a"]["effective"]["tf.keras is"].startswith("keras.src.")
        assert result.summary["b"]["effective"]["tf.keras is"].startswith("tf_keras.")
    if name == "two-models-one-process":  # the second draw from the stream the seeds set once, in one process
        assert initial == {n for n in c["per_epoch"][0]["layers"] if n.endswith("kernel")}
        assert diagnosis["sentence"].startswith("B is the second model built in A's process")
        assert "A trained again in another fresh process starts elsewhere too" in diagnosis["sentence"]
    if name == "custom-layer":
        assert initial == {"scale/w"} and "1 of 7 variables (scale/w)" in diagnosis["sentence"]
    if name == "tf-seed-not-enough":  # every kernel is drawn anew; the biases start at zero in both
        assert initial == {n for n in c["per_epoch"][0]["layers"] if n.endswith("kernel")}
    if diagnosis["mechanism"] == "preprocessing":
        a, b = (result.summary[m]["history"][0]["loss"] for m in ("a", "b"))
        assert c["per_epoch"][0]["max_abs"] == 0 and a != b  # same start, other inputs, other first-epoch loss
    for m in ("a", "b"):  # the XLA factor's sentence: Keras 3's "auto" compiles only where there is a GPU
        run, effective = getattr(PRESETS[name].pair(), m), result.summary[m]["effective"]
        if run.engine.name == "keras" and run.numerics.xla == "auto" and effective["device"] == "CPU":
            assert effective["jit_compile"] is False
    if diagnosis["mechanism"] in ("update_arithmetic", "numerics", "batch_order") and name != "onednn-on-off":
        assert not initial and c["first_divergent_epoch"] >= 1


@pytest.mark.parametrize("legacy", [False, True])
def test_numpy_and_tf_seeds_leave_keras_initializers_drawing_from_pythons_random(fresh_facts, legacy):
    assert "np.random.seed + tf.random.set_seed leave the Keras initializers drawing from Python's random" in \
        not_reproducible(PRESETS["tf-seed-not-enough"].pair().a)
    assert fresh_facts(legacy)["initializers"] == [True, False]


# Each script below adds what it reads to `facts`; a fresh interpreter runs several (fresh_facts).
FACTS_START = "import json, random\nimport numpy as np, tensorflow as tf\nfacts = {}\n"
FACTS_END = "print(json.dumps(facts))\n"

LIBRARY_FACTS = r"""
import inspect
import keras
from keras.src.trainers.trainer import model_supports_jit

o = keras.optimizers
facts.update({"adam_eps": o.Adam().epsilon, "rmsprop_eps": o.RMSprop().epsilon, "rmsprop_rho": o.RMSprop().rho,
              "adagrad_eps": o.Adagrad().epsilon, "adagrad_acc": o.Adagrad().initial_accumulator_value,
              "tf1_adam_eps": inspect.signature(tf.compat.v1.train.AdamOptimizer).parameters["epsilon"].default})
try:
    o.Adam(clipnorm=1.0, clipvalue=1.0)
    facts["clip_both"] = "accepted"
except ValueError:
    facts["clip_both"] = "refused"
keras.utils.set_random_seed(5)
drawn = (random.random(), float(np.random.rand()), float(tf.random.uniform(())))
random.seed(5); np.random.seed(5); tf.random.set_seed(5)
facts["set_random_seed_seeds_python_numpy_tf"] = drawn == (random.random(), float(np.random.rand()),
                                                           float(tf.random.uniform(())))
x = np.random.default_rng(0).normal(size=(50, 3)).astype("float32")
layer = keras.layers.Normalization()
layer.adapt(x)
facts["normalization_population_var"] = bool(np.allclose(np.asarray(layer.variance).ravel(), x.var(axis=0, ddof=0),
                                                         rtol=1e-5))
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
facts["jit_ok"] = model_supports_jit(model)
tf.config.experimental.enable_op_determinism()
facts["jit_ok_with_determinism"] = model_supports_jit(model)
"""


TF_KERAS = "facts['tf.keras'] = [tf.__version__, tf.keras.Sequential.__module__]\n"


def _initializer_draws(legacy: bool) -> str:
    """One process, two draws each: reseeding Python's random repeats the weights; reseeding NumPy and TF does not."""
    return ("import tf_keras as keras\n" if legacy else "import keras\n") + (
        "def draw():\n"
        "    return keras.layers.Dense(4, kernel_initializer='glorot_uniform')(np.ones((1, 3), 'float32'))"
        ".numpy().tobytes()\n"
        "random.seed(7); one = draw(); random.seed(7); two = draw()\n"
        "np.random.seed(7); tf.random.set_seed(7); three = draw(); np.random.seed(7); tf.random.set_seed(7); "
        "four = draw()\n"
        "facts['initializers'] = [one == two, three == four]\n")


@pytest.fixture(scope="module")
def fresh_facts():
    """Facts read off the installed libraries, in two fresh interpreters started together when the first of
    their tests asks (each is one process on one core): tf.keras as installed, and with TF_USE_LEGACY_KERAS=1.
    Each draws Keras initializers first, before anything seeds Keras. fresh_facts(legacy) is one's facts."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    started = {legacy: FreshPython(FACTS_START + _initializer_draws(legacy) + TF_KERAS +
                                   ("" if legacy else LIBRARY_FACTS) + FACTS_END,
                                   env={**env, **({"TF_USE_LEGACY_KERAS": "1"} if legacy else {})})
               for legacy in (False, True)}
    read = {}

    def facts(legacy: bool) -> dict:
        if legacy not in read:
            read[legacy] = json.loads(started[legacy].output().splitlines()[-1])
        return read[legacy]

    yield facts
    for script in started.values():
        script.stop()


def test_the_library_defaults_and_behaviours_the_mechanisms_cite(fresh_facts):
    """Each number and behaviour a factor's sentence attributes to Keras or TensorFlow, read off the installed ones."""
    facts = fresh_facts(False)
    said = {path: BY_PATH[path].mechanism for path in BY_PATH}
    assert "Keras uses 1e-7, PyTorch and TF1 use 1e-8" in said["optimizer.epsilon"]
    assert facts["adam_eps"] == facts["rmsprop_eps"] == facts["adagrad_eps"] == 1e-7 and facts["tf1_adam_eps"] == 1e-8
    assert "Keras 0.9" in said["optimizer.rho"] and facts["rmsprop_rho"] == 0.9
    assert "Keras 0.1" in said["optimizer.initial_accumulator"] and facts["adagrad_acc"] == 0.1
    assert "seeds Python, NumPy and TF" in said["seeding.policy"] and facts["set_random_seed_seeds_python_numpy_tf"]
    assert "Keras Normalization adapts population statistics" in said["preprocess.scaler"]
    assert facts["normalization_population_var"]
    assert "turns Keras 3's auto XLA off" in said["numerics.op_determinism"]
    assert facts["jit_ok"] is True and facts["jit_ok_with_determinism"] is False
    with pytest.raises(ConfigError, match="Keras takes clipnorm or clipvalue, not both"):
        parse_run({"optimizer": {"clipnorm": 1.0, "clipvalue": 1.0}})
    assert facts["clip_both"] == "refused"
