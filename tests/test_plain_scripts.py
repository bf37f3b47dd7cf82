"""The app's numbers are a plain script's numbers: for every engine, the app's default run, the exported script and
a script as a user writes it (tests/plain_script.py: no thread calls, the framework's defaults, `model.fit` and
`model.predict`) agree bit for bit on the initial weights, the final weights and the test predictions.

The network is wide enough that on this 2-core machine TensorFlow and PyTorch sum differently on one thread than
on their default threads: in the first three cases B runs on one intra-op thread and must differ from the plain
script, so the comparison can fail (and did, for PyTorch, when one thread was the app's default).
"""

import os

import numpy as np
import pytest

from core.compare import weights_digest
from core.config import DataConfig
from core.engines import ENGINES
from core.export import SCRIPT_NAME, standalone_script
from core.factors import BY_PATH, make_pair, parse_run
from core.pair import run_pair
from helpers import FreshPython, user_env
from plain_script import HIDDEN, LEARNING_RATE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 2
# How a user runs each engine's plain script: which of its two trainings, and the environment it sets.
PLAIN = {
    "keras": ("keras", {"KERAS_BACKEND": "tensorflow"}),
    "tf_keras": ("keras", {"TF_USE_LEGACY_KERAS": "1"}),
    "tensorflow": ("tensorflow", {}),
    "keras_jax": ("keras", {"KERAS_BACKEND": "jax"}),
    "keras_torch": ("keras", {"KERAS_BACKEND": "torch"}),
}
ONE_THREAD = {"numerics.intra_threads": 1}
# A's engine, what B differs in, and the batch order: fit's own shuffle ("framework": in PyTorch it draws from the
# generator that model.predict's DataLoader draws from too) and the app's default, a NumPy permutation per epoch
# ("fixed": fed to fit through tf.data on TensorFlow, a DataLoader on PyTorch, per epoch on JAX).
CASES = {
    "keras": ("keras", ONE_THREAD, "framework"),
    "keras_torch": ("keras_torch", ONE_THREAD, "framework"),
    "tensorflow": ("tensorflow", ONE_THREAD, "framework"),
    "tf_keras-keras_jax-fixed": ("tf_keras", {"engine.name": "keras_jax"}, "fixed"),
    "keras-keras_torch-fixed": ("keras", {"engine.name": "keras_torch"}, "fixed"),
}


def _plain_runs() -> set[tuple[str, str]]:
    """(engine, batch order) of every run the cases make."""
    return {(engine, order) for a, differs, order in CASES.values() for engine in (a, differs.get("engine.name", a))}


def test_every_engine_is_compared_at_its_defaults():
    assert {engine for engine, _ in _plain_runs()} == set(ENGINES)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """(engine, batch order) -> its plain script's arrays (read when first asked for); every plain run the cases
    need starts at once, each in a fresh process."""
    folder = tmp_path_factory.mktemp("plain")
    started = {}
    for engine, order in _plain_runs():
        kind, env = PLAIN[engine]
        started[engine, order] = FreshPython(
            os.path.join(ROOT, "tests", "plain_script.py"), kind, str(EPOCHS), str(folder / f"{engine}-{order}.npz"),
            *(["fixed"] if order == "fixed" else []), env=user_env(TF_CPP_MIN_LOG_LEVEL="2", **env))
    outputs = {}

    def output(engine: str, order: str) -> dict[str, np.ndarray]:
        if (engine, order) not in outputs:
            started[engine, order].output()
            with np.load(folder / f"{engine}-{order}.npz") as npz:
                outputs[engine, order] = {name: npz[name] for name in npz.files}
        return outputs[engine, order]

    yield output
    for proc in started.values():
        proc.stop()


def _pair(a_engine: str, b_differs: dict, order: str):
    run = parse_run({"engine": {"name": a_engine}, "model": {"hidden": list(HIDDEN)},
                     "optimizer": {"name": "sgd", "learning_rate": LEARNING_RATE},
                     "training": {"epochs": EPOCHS, "batch_order": order}})
    return make_pair(DataConfig(dataset="breast_cancer"), run, b_differs)


def _named(arrays: dict, prefix: str, names: list[str]) -> dict[str, np.ndarray]:
    """The plain script's weights in get_weights order under the app's 'layer/variable' names."""
    return {name: arrays[f"{prefix}_{i}"] for i, name in enumerate(names)}


@pytest.mark.parametrize("case", CASES)
def test_the_app_the_exported_script_and_a_plain_script_agree_bitwise(pool, plain, tmp_path, case):
    pair = _pair(*CASES[case])
    script = tmp_path / SCRIPT_NAME
    script.write_text(standalone_script(pair))
    exported = FreshPython(str(script), "--out", str(tmp_path / "out"), env=user_env())
    result = run_pair(pair, pool, cache=False, checks=False)
    printed = exported.output()
    assert result.complete, (result.summary["a"]["message"], result.summary["b"]["message"])
    for m, run in (("a", pair.a), ("b", pair.b)):
        history = result.weights(m)
        names = list(history)
        initial, final = ({name: w[index] for name, w in history.items()} for index in (0, -1))
        predictions = result.predictions(m)
        # the exported script: the same bits as the app's run, whatever its settings
        assert f"{m}: initial weights digest {weights_digest(initial)}" in printed
        assert f"{m}: final weights digest {weights_digest(final)}" in printed
        with np.load(tmp_path / "out" / f"{m}.npz") as got:
            assert np.array_equal(got["test_predictions"], predictions), m
        # the plain script: the same bits as the app's defaults, other bits when B runs on one thread
        reference = plain(run.engine.name, run.training.batch_order)
        assert weights_digest(_named(reference, "initial", names)) == weights_digest(initial), (case, m)
        same_final = weights_digest(_named(reference, "final", names)) == weights_digest(final)
        same_predictions = np.array_equal(reference["predictions"].astype(np.float64), predictions)
        if m == "b" and ONE_THREAD.items() <= dict(pair.b_differs).items():
            assert not same_final and not same_predictions, (case, m, "one thread should change this network's bits")
        else:
            assert same_final and same_predictions, (case, m, np.max(np.abs(reference["predictions"] - predictions)))
        effective, framework = result.summary[m]["effective"], ENGINES[run.engine.name].framework
        assert effective["predict"].startswith("model.predict(x)") != (run.engine.name == "tensorflow")
        assert effective["frameworks imported"] == [framework], "a worker imports its own framework only"
        assert effective["jit_compile"] == (framework == "jax")  # XLA "auto" on this GPU-less machine
        if framework == "jax":  # TF32 "default" leaves the framework's own choice, read back from it
            assert effective["matmul_precision"] == "default"
        else:
            assert effective["tf32"] is (framework == "tensorflow")
    assert "Keras 3's 'auto' turns it on with TensorFlow only when a GPU is present, and always with JAX" in \
        BY_PATH["numerics.xla"].mechanism
    assert "on in TensorFlow, JAX's default matmul precision, off for PyTorch's matmuls" in \
        BY_PATH["numerics.tf32"].mechanism
    assert "0 leaves the framework's own default, which is what a plain script runs with" in \
        BY_PATH["numerics.intra_threads"].mechanism
