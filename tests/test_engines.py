"""The engine registry: what each engine declares, and what the app does with an engine it cannot run."""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import ConfigError, DataConfig
from core.engines import BACKEND_FACTORS, ENGINES, gpu_present, worker_env
from core.factors import FACTORS, factor, make_pair, not_applied, parse_run
from core.pair import run_pair
from core.presets import ALL_PRESETS, PRESETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_engine_has_a_training_function_and_declares_only_backend_factors():
    for e in ENGINES.values():
        module, function = e.trainer.split(":")
        assert callable(getattr(importlib.import_module(module), function)), e.name
        assert set(e.honours) <= set(BACKEND_FACTORS), e.name
        assert e.available(), f"{e.name}: CI installs every engine's framework"
    assert {f.path for f in FACTORS} >= set(BACKEND_FACTORS)
    assert factor("numerics.onednn").engines == ("keras", "tf_keras", "tensorflow")
    assert factor("optimizer.epsilon").engines == tuple(ENGINES)


def test_a_backend_factor_another_engine_ignores_is_reported_not_applied():
    jax_run = parse_run({"engine": {"name": "keras_jax"}, "numerics": {"onednn": "off", "tf32": "off"}})
    assert "numerics.onednn" in not_applied(jax_run) and "numerics.tf32" not in not_applied(jax_run)
    env = dict(worker_env(jax_run))
    assert env["KERAS_BACKEND"] == "jax" and env["JAX_DEFAULT_MATMUL_PRECISION"] == "highest"
    precision = {tf32: dict(worker_env(jax_run.with_value("numerics.tf32", tf32)))["JAX_DEFAULT_MATMUL_PRECISION"]
                 for tf32 in ("default", "on")}
    assert precision == {"default": None, "on": "tensorfloat32"}, "default leaves JAX's own precision"
    assert env["TF_ENABLE_ONEDNN_OPTS"] is None, "a variable of another framework is unset, never inherited"
    assert dict(worker_env(parse_run({"numerics": {"onednn": "off"}})))["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_numpy_tf_seeding_needs_tensorflow():
    with pytest.raises(ConfigError, match="numpy_tf calls tf.random.set_seed"):
        parse_run({"engine": {"name": "keras_torch"}, "seeding": {"policy": "numpy_tf"}})


@pytest.fixture
def torch_missing(monkeypatch):
    """Keras on PyTorch as on a machine without torch: its entry needs a module that is not there."""
    missing = dataclasses.replace(ENGINES["keras_torch"], needs=("torch_is_not_installed_here", "keras"))
    monkeypatch.setitem(ENGINES, "keras_torch", missing)
    return missing


def test_an_engine_that_is_not_installed_is_refused_with_the_command_that_installs_it(torch_missing, pool):
    pair = make_pair(DataConfig(), parse_run({"training": {"epochs": 1}}), {"engine.name": "keras_torch"})
    with pytest.raises(ConfigError, match="torch_is_not_installed_here, which is not installed here: pip install"):
        run_pair(pair, pool, cache=False, checks=False)


def test_the_sidebar_shows_an_engine_that_is_not_installed_and_how_to_install_it(torch_missing, app_test_pages):
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.query_params.update({"b.engine.name": "keras_torch"})
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert any(torch_missing.install in w and "Keras 3 on PyTorch" in w for w in warnings), warnings
    assert at.sidebar.button(key="run").disabled


def test_keras_on_jax_runs_where_tensorflow_cannot_be_imported(tmp_path):
    """As on the GPU machine (JAX, no TensorFlow): the CLI and a Keras-on-JAX pair never need TensorFlow."""
    (tmp_path / "pair.json").write_text(json.dumps({"a": {"engine": {"name": "keras_jax"}, "training": {"epochs": 1}},
                                                    "b_differs": {"optimizer.epsilon": 1e-8}}))
    code = ("import sys, runpy; from core.backends import _Hidden; sys.meta_path.insert(0, _Hidden({'tensorflow'})); "
            f"sys.argv = ['core', 'run', {str(tmp_path / 'pair.json')!r}, '--no-cache', '--out', "
            f"{str(tmp_path / 'out')!r}]; runpy.run_module('core', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["a"]["effective"]["frameworks imported"] == ["jax"]
    assert result["diagnosis"]["mechanism"] == "update_arithmetic"


def test_a_jax_run_from_xla_s_compilation_cache_is_bitwise_the_run_that_compiled(pool, monkeypatch):
    """JAX workers keep XLA's compiled programs on disk (core.engines): the second fresh worker loads them."""
    import core.engines
    from core.storage import cache_root

    monkeypatch.setattr(core.engines, "cache_root", cache_root)  # this test's own folder, empty at its start
    pair = make_pair(DataConfig(dataset="moons", n_samples=200),
                     parse_run({"engine": {"name": "keras_jax"}, "training": {"epochs": 2}}), {})
    compiled = Path(dict(worker_env(pair.a))["JAX_COMPILATION_CACHE_DIR"])
    first = run_pair(pair, pool, cache=False, checks=False)
    kept = set(compiled.iterdir())
    assert kept, "the first run left its compiled programs"
    again = run_pair(pair, pool, cache=False, checks=False)
    assert set(compiled.iterdir()) == kept, "the second run compiled nothing new"
    for m in "ab":
        assert first.summary["compare"]["weights_bitwise_equal"] and again.summary["compare"]["weights_bitwise_equal"]
        for name, w in first.weights(m).items():
            assert w.tobytes() == again.weights(m)[name].tobytes(), name


def test_pytorch_applies_tf32_and_deterministic_algorithms(pool):
    """The TF32 and determinism factors on PyTorch, as their sentences say, read back from the runs."""
    assert "allow_tf32=False on PyTorch" in factor("numerics.tf32").mechanism
    assert "torch.use_deterministic_algorithms" in factor("numerics.op_determinism").mechanism
    run = parse_run({"engine": {"name": "keras_torch"}, "training": {"epochs": 1},
                     "numerics": {"tf32": "off", "op_determinism": True}})
    pair = make_pair(DataConfig(dataset="moons", n_samples=200), run, {"numerics.tf32": "on",
                                                                       "numerics.op_determinism": False})
    result = run_pair(pair, pool, cache=False, checks=False)
    a, b = (result.summary[m]["effective"] for m in "ab")
    assert (a["tf32"], a["op_determinism"]) == (False, True) and (b["tf32"], b["op_determinism"]) == (True, False)


def test_a_gpu_is_seen_from_its_device_files_unless_cuda_visible_devices_hides_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not gpu_present(str(tmp_path / "nvidia[0-9]*"))
    (tmp_path / "nvidiactl").touch()  # the driver's control file is not a GPU
    assert not gpu_present(str(tmp_path / "nvidia[0-9]*"))
    (tmp_path / "nvidia0").touch()
    assert gpu_present(str(tmp_path / "nvidia[0-9]*"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert not gpu_present(str(tmp_path / "nvidia[0-9]*"))


@pytest.mark.skipif(gpu_present(), reason="this machine has a GPU: the scenario runs there")
def test_a_gpu_scenario_without_a_gpu_is_a_clear_error(pool):
    gpu = ALL_PRESETS["tf32-vs-float32"]
    assert gpu.needs_gpu and "tf32-vs-float32" not in PRESETS
    result = run_pair(gpu.pair(epochs=1), pool, cache=False, checks=False)
    assert not result.complete
    assert "numerics.device: 'gpu' was asked for, but jax sees no GPU" in result.summary["a"]["message"]
