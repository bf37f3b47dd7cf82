"""The exported standalone script: the app's own engine code carried unchanged, no Divergence Lab
imports, and bitwise the same final weights and test predictions as the app's own runs, on every engine."""

import ast
import functools
import importlib
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
from pyflakes.api import check as pyflakes_check
from pyflakes.reporter import Reporter

from core.compare import weights_digest
from core.config import ConfigError, DataConfig, PairConfig, RunConfig
from core.export import CARRIED_MODULES, SCRIPT_NAME, pair_unlike_a_plain_script, standalone_script
from core.factors import make_pair, parse_run
from core.pair import run_pair
from core.presets import PRESETS, preset
from helpers import user_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOWED_IMPORTS = {"__future__", "argparse", "contextlib", "dataclasses", "hashlib", "importlib", "json", "math", "os",
                   "random", "subprocess", "sys", "time", "types", "typing", "warnings",
                   "numpy", "sklearn", "pandas", "tensorflow", "keras", "tf_keras", "jax", "torch"}
# The script's own code around the carried functions (what core/worker.py and the pool do for a run).
SCRIPT_OWN = {"set_environment", "load_data", "progress", "initial_weights", "train_one", "train_both_and_compare",
              "main"}

CASES = {
    # model.fit against the raw GradientTape loop with TF's Adam kernel, B from A's initial weights
    "fit-vs-raw-loop": lambda: preset("fit-vs-raw-loop").pair(epochs=2),
    # two moons with missing values, the framework's shuffle. A: the raw loop with the textbook Adam, dropout
    # and batch norm, rows with a NaN dropped, min-max fitted on all rows. B: tf_keras from A's initial weights,
    # median-filled, Keras Normalization (dropout and batch norm of both engines and the Keras layer checked too)
    "moons-missing-raw-loop-vs-tf-keras": lambda: make_pair(
        DataConfig(dataset="moons", n_samples=200, missing_rate=0.05),
        parse_run({"training": {"epochs": 2, "batch_order": "framework"},
                   "engine": {"name": "tensorflow", "raw_optimizer": "textbook"},
                   "model": {"dropout": 0.2, "batch_norm": True},
                   "preprocess": {"impute": "drop", "fit_on": "all", "scaler": "minmax"}}),
        {"engine.name": "tf_keras", "preprocess.impute": "median", "preprocess.scaler": "keras_normalization"}, True),
    # Keras 3 on JAX against Keras 3 on PyTorch from A's initial weights: spirals, dropout and batch norm, B with
    # Keras Normalization (computed on PyTorch); deterministic ops, without which JAX on a GPU need not repeat
    "spirals-jax-vs-torch": lambda: make_pair(
        DataConfig(dataset="spirals", n_samples=200),
        parse_run({"training": {"epochs": 2}, "engine": {"name": "keras_jax"}, "numerics": {"op_determinism": True},
                   "model": {"dropout": 0.2, "batch_norm": True, "hidden": [16]}}),
        {"engine.name": "keras_torch", "preprocess.scaler": "keras_normalization"}, True),
}
# A case costs about 30 s on two cores (four framework processes, and the pool's replacements), so the
# three above cover the five engines; these pass too, and run when DIVERGENCE_LAB_EXPORT_ALL=1 is set.
MORE_CASES = {
    "same-seed-two-backends": lambda: preset("same-seed-two-backends").pair(epochs=2),
    "two-backends-aligned": lambda: preset("two-backends-aligned").pair(epochs=2),
    # Keras 3 against tf_keras (Keras 2), each with fit's own shuffle
    "keras3-vs-tf-keras": lambda: preset("keras3-vs-tf-keras").pair(epochs=2),
    "adam-epsilon": lambda: preset("adam-epsilon").pair(epochs=2),
    # a synthetic series, a GRU, regression; drop vs median, min-max vs Keras Normalization; Keras 3 vs tf_keras
    "series-missing-gru": lambda: make_pair(
        DataConfig(dataset="series", n_samples=150, missing_rate=0.1),
        parse_run({"training": {"epochs": 2}, "model": {"kind": "gru", "hidden": [8]},
                   "preprocess": {"impute": "drop", "fit_on": "all", "scaler": "minmax"}}),
        {"preprocess.impute": "median", "preprocess.scaler": "keras_normalization", "engine.name": "tf_keras"}),
    # explicit seeds, the custom layer, SGD with Nesterov momentum and clipnorm: TF kernels vs the textbook form
    "moons-explicit-seeds-sgd-kernels-vs-textbook": lambda: make_pair(
        DataConfig(dataset="moons", n_samples=200),
        parse_run({"training": {"epochs": 2}, "engine": {"name": "tensorflow"}, "seeding": {"policy": "explicit"},
                   "model": {"dropout": 0.2, "scale_layer": True, "initializer": "he_normal"},
                   "optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True, "clipnorm": 1.0}}),
        {"engine.raw_optimizer": "textbook", "seeding.seed": 4}),
    # a CNN in mixed precision, Adagrad with clipvalue on one side; Keras 3 vs tf_keras
    "digits-cnn-mixed-float16": lambda: make_pair(
        DataConfig(dataset="digits"),
        parse_run({"training": {"epochs": 1}, "model": {"kind": "cnn", "hidden": [16], "dropout": 0.1},
                   "optimizer": {"name": "adagrad"}, "numerics": {"dtype": "mixed_float16"}}),
        {"engine.name": "tf_keras", "optimizer.clipvalue": 0.5}),
}
# The GPU scenarios, on a machine that shows a GPU (core.presets lists them only there; CI has none).
GPU_CASES = {name: functools.partial(p.pair, epochs=2) for name, p in PRESETS.items() if p.needs_gpu}


@pytest.mark.parametrize("case", list(CASES) + list(GPU_CASES) + list(MORE_CASES))
def test_the_exported_script_reproduces_the_app_bitwise(pool, tmp_path, case):
    if case in MORE_CASES and not os.environ.get("DIVERGENCE_LAB_EXPORT_ALL"):
        pytest.skip("set DIVERGENCE_LAB_EXPORT_ALL=1 to run the longer list")
    pair = {**CASES, **GPU_CASES, **MORE_CASES}[case]()
    script = tmp_path / SCRIPT_NAME
    script.write_text(standalone_script(pair))
    out = tmp_path / "out"
    # the script's two processes import TensorFlow while the app's (warm) workers train
    proc = subprocess.Popen([sys.executable, str(script), "--out", str(out)], cwd=tmp_path, env=user_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result = run_pair(pair, pool, cache=False, checks=False)
    finally:
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert result.complete, (result.summary["a"]["message"], result.summary["b"]["message"])
    for m in ("a", "b"):
        app = result.weights(m)
        with np.load(out / f"{m}.npz") as got:
            assert sorted(got.files) == sorted([*app, "test_predictions"])
            for name, history in app.items():
                assert got[name].dtype == history[-1].dtype and np.array_equal(got[name], history[-1]), (m, name)
            assert np.array_equal(got["test_predictions"], result.predictions(m)), m
        # the digest the Reproduce page shows beside the script is the one the script prints
        assert f"{m}: final weights digest {weights_digest({k: v[-1] for k, v in app.items()})}" in stdout
    bitwise = result.summary["compare"]["weights_bitwise_equal"]
    assert ("A and B are bitwise equal" if bitwise else "A and B differ") in stdout
    assert "dense_0/kernel" in stdout and "max |A-B|" in stdout


def _imported_roots(text: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            roots.add(node.module.split(".")[0])
    return roots


def _undefined_names(text: str) -> list[str]:
    class Collect:
        def __init__(self):
            self.messages = []

        def flake(self, message):
            self.messages.append(str(message))

        def unexpectedError(self, filename, message):  # noqa: N802 - pyflakes' reporter interface
            self.messages.append(message)

        def syntaxError(self, filename, message, *args):  # noqa: N802
            self.messages.append(message)

    collect = Collect()
    pyflakes_check(text, SCRIPT_NAME, Reporter(collect, collect))
    return [m for m in collect.messages if "undefined name" in m or "syntax" in m.lower()]


def test_every_preset_exports_a_script_that_imports_only_public_packages():
    for name, p in PRESETS.items():
        if p.same_process:  # one process for both: not the script's two processes, and it says so
            with pytest.raises(ConfigError, match="a pair built in one process is the article's Example 1"):
                standalone_script(p.pair())
            continue
        text = standalone_script(p.pair())
        roots = _imported_roots(text)
        assert roots <= ALLOWED_IMPORTS, (name, roots - ALLOWED_IMPORTS)
        assert "core" not in roots and "ui" not in roots
        assert '"b_differs": {' in text  # the pair's config rides along
        docstring = " ".join(text[:text.index('"""', 3)].split())
        for who, items in pair_unlike_a_plain_script(p.pair()).items():  # what the Overview says, the script says
            assert f"Unlike a plain script of its framework, {who} " in docstring and items[0] in docstring, name
        assert _undefined_names(text) == [], name


def test_the_script_carries_the_engines_own_code_unchanged():
    """One source: every definition in the script, apart from its own few, is the app's, character for character."""
    modules = [importlib.import_module(m) for m in CARRIED_MODULES]
    for name in ("fit-vs-raw-loop", "two-backends-aligned", "same-seed-two-backends"):
        text = standalone_script(preset(name).pair())
        defined = [node.name for node in ast.parse(text).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        carried = [d for d in defined if d not in SCRIPT_OWN]
        assert set(defined) >= SCRIPT_OWN and len(carried) > 20, (name, defined)
        for d in carried:
            origin = [getattr(m, d) for m in modules if getattr(getattr(m, d, None), "__module__", None) == m.__name__]
            assert len(origin) == 1, (name, d)
            assert inspect.getsource(origin[0]) in text, (name, d)


def test_the_script_is_written_for_the_pair(tmp_path):
    epsilon = standalone_script(preset("adam-epsilon").pair())
    assert '"b_differs": {\n    "optimizer.epsilon": 1e-08\n  }' in epsilon
    assert "def train_keras(" in epsilon and "def train_tensorflow(" not in epsilon
    assert "def bundled_features(" in epsilon and "load_digits" in epsilon and "def read_csv_frame" not in epsilon
    assert 'raise SystemExit("A\'s initial weights never arrived")' in epsilon
    legacy = standalone_script(preset("keras3-vs-tf-keras").pair())
    assert '"b": {' in legacy and '"TF_USE_LEGACY_KERAS": "1"' in legacy and "tf-keras 2." in legacy
    raw = standalone_script(preset("fit-vs-raw-loop").pair())
    assert "raw.ResourceApplyAdam(" in raw and "tf.GradientTape()" in raw and "def train_keras(" in raw
    onednn = standalone_script(preset("onednn-on-off").pair())
    assert '"TF_ENABLE_ONEDNN_OPTS": "1"' in onednn and '"TF_ENABLE_ONEDNN_OPTS": "0"' in onednn
    backends = standalone_script(preset("two-backends-aligned").pair())
    assert '"KERAS_BACKEND": "tensorflow"' in backends and '"KERAS_BACKEND": "torch"' in backends
    assert "framework='torch'" not in backends and 'framework="torch"' in backends
    assert "JAX_COMPILATION_CACHE_DIR" not in backends  # the app's own cache, which changes no number
    table = tmp_path / "table.csv"
    table.write_text("x1,x2,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    csv = standalone_script(make_pair(DataConfig(dataset="csv", csv_path=str(table), csv_target="label"),
                                      RunConfig(), {}))
    assert f'CSV_PATH = "{table}"' in csv and "pd.read_csv(CSV_PATH)" in csv and "def csv_frame_features(" in csv
    series = standalone_script(make_pair(DataConfig(dataset="series"), RunConfig(), {}))
    assert "return _series(cfg)" in series and "def bundled_features(" not in series
    unseeded = standalone_script(preset("tf-seed-not-enough").pair())
    assert "Not repeatable: A's numbers change from run to run" in unseeded


def test_what_the_app_refuses_is_not_exported():
    cnn_raw = RunConfig().with_value("model.kind", "cnn").with_value("engine.name", "tensorflow")
    with pytest.raises(ConfigError, match="tensorflow engine implements dense networks"):
        standalone_script(PairConfig(a=cnn_raw))
    shapes = PairConfig(b_differs=(("model.hidden", (8,)),), b_starts_from_a_init=True)
    with pytest.raises(ConfigError, match="same weight shapes"):
        standalone_script(shapes)
    with pytest.raises(ConfigError, match="no file at"):
        standalone_script(make_pair(DataConfig(dataset="csv", csv_path="/nonexistent.csv", csv_target="y"),
                                    RunConfig(), {}))


def test_exporting_imports_no_tensorflow():
    code = ("import sys\nfrom core.config import ConfigError\nfrom core.export import standalone_script\n"
            "from core.presets import PRESETS\n"
            "for p in PRESETS.values():\n"
            "    try:\n        standalone_script(p.pair())\n    except ConfigError:\n        pass\n"
            "print(','.join(m for m in ('tensorflow', 'keras', 'tf_keras', 'streamlit') if m in sys.modules) or 'none')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_the_command_line_writes_the_script(tmp_path, capsys):
    from core.__main__ import main

    out = tmp_path / "pair.py"
    assert main(["script", "--preset", "two-backends-aligned", "--epochs", "3", "--out", str(out)]) == 0
    assert out.read_text() == standalone_script(preset("two-backends-aligned").pair(epochs=3))
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": {"optimizer": {"epsilon": -1}}}')
    assert main(["script", str(bad), "--out", str(tmp_path / "never.py")]) == 2
    assert "optimizer.epsilon" in capsys.readouterr().err and not (tmp_path / "never.py").exists()
