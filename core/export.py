"""The exported standalone script: one plain Keras / TensorFlow / NumPy / scikit-learn file
that trains A and B of a pair the way the app does, bit for bit, with no Divergence Lab code.

    standalone_script(pair) -> str      the script's text (SCRIPT_NAME is a good file name)

Run with no argument, the script starts itself once per model in a fresh Python process
(`--model a`, `--model b`), because TensorFlow reads its environment (TF_USE_LEGACY_KERAS,
TF_ENABLE_ONEDNN_OPTS, ...) once, at import, and keeps seeds, determinism and dtype policies
process-wide, as the app's workers do. Each child writes `a.npz` / `b.npz` into `--out DIR`
(final weights under the app's 'layer/variable' names, plus `test_predictions`); the parent
prints max |A-B| per variable and whether A and B are bitwise equal. When B starts from A's
initial weights, A's process saves them as soon as its model is built and B's process, built
the same way (so that it consumes the same random numbers), waits for them and assigns them.

The code is written out for this pair only: its data set, preprocessing, network, optimizer,
engine, seeding, batch order and numerics, with a comment on why where it matters. Where A and
B differ, the code reads `run[...]` from a per-model dict `RUNS`; everything they share is
inline. The few helpers whose arithmetic must match the app to the bit (spirals, the seasonal
series, missing values, imputation, scaling, the fixed batch order, the Keras weight names and
the custom layer) are copied from core's own source, so each has one source.

Every pair that `core.factors.parse_pair` accepts can be exported; what the app refuses (a cnn
or gru with the tensorflow engine, a cnn without digits, B from A's initial weights with other
layer shapes, a value out of range) raises ConfigError here as well, and so does a CSV that
cannot be read. Runs the app cannot repeat either (no seeding, NumPy +
TF seeds with a Keras engine, explicit seeds with the custom layer or an unseeded shuffle) are
exported as they are, with a note in the script's docstring. This module imports no TensorFlow.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any, Callable

import numpy as np

from core import data as data_module
from core import engine_keras, engine_tf, preprocess, recording
from core.batch import library_versions
from core.compare import weights_digest
from core.config import ConfigError, PairConfig, RunConfig
from core.engines import engine, worker_env
from core.factors import factor, format_value, parse_pair

SCRIPT_NAME = "divergence_pair.py"
MODELS = ("a", "b")
INIT_FILE = "a_initial_weights.npz"
Lines = list[str]


def standalone_script(pair: PairConfig) -> str:
    """The text of one standalone Python script that reproduces runs A and B of `pair`.

    Raises core.config.ConfigError for a pair the app would refuse or data it cannot load.
    """
    pair = parse_pair(pair.to_dict())  # the app's own validation, whatever built this PairConfig
    if pair.same_process:
        raise ConfigError("the standalone script trains A and B each in a fresh process; a pair built in one "
                          "process is the article's Example 1, whose code the Overview shows")
    elsewhere = sorted({run.engine.name for run in (pair.a, pair.b) if engine(run.engine.name).framework !=
                        "tensorflow"})
    if elsewhere:
        raise ConfigError(f"engine.name: the standalone script covers the engines on TensorFlow so far, not "
                          f"{', '.join(engine(name).label for name in elsewhere)}")
    return _Writer(pair, data_module.load(pair.data)).script()


OPTIMIZER_CLASSES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


def same_process_code(pair: PairConfig) -> str:
    """What a pair built in one process does, in the article's words (the worker runs the app's equivalent)."""
    a, b = pair.a, pair.b
    seeding = {
        "numpy_tf": f"np.random.seed({a.seeding.seed})\ntf.random.set_seed({a.seeding.seed})",
        "keras": f"keras.utils.set_random_seed({a.seeding.seed})", "none": "# no seeding",
        "explicit": f"# explicit seeds ({a.seeding.seed} + i) on every initializer"}[a.seeding.policy]
    legacy = a.engine.name == "tf_keras"

    def layers(run: RunConfig) -> str:
        hidden = ", ".join(f'Dense({u}, activation="{run.model.activation}")' for u in run.model.hidden)
        return f"[Input(...), {hidden}, Dense(outputs)]"

    return "\n".join([
        "import numpy as np, tensorflow as tf" + ("" if legacy else ", keras"),
        *(["import tf_keras as keras  # TF_USE_LEGACY_KERAS=1: tf.keras is tf_keras too"] if legacy else []),
        "", seeding, "",
        f"model_a = keras.Sequential({layers(a)})",
        f"model_b = tf.keras.Sequential({layers(b)})  # the same process, right after A",
        f"model_a.compile(optimizer=keras.optimizers.{OPTIMIZER_CLASSES[a.optimizer.name]}(...), loss=...)",
        f"model_b.compile(optimizer=tf.keras.optimizers.{OPTIMIZER_CLASSES[b.optimizer.name]}(...), loss=...)",
        f"model_a.fit(x_train, y_train, epochs={a.training.epochs}, batch_size={a.training.batch_size})",
        f"model_b.fit(x_train, y_train, epochs={b.training.epochs}, batch_size={b.training.batch_size})",
    ])


def not_reproducible(run: RunConfig) -> list[str]:
    """Why this run's numbers change from one fresh process to the next (empty when they do not)."""
    s, keras_engine = run.seeding, run.engine.name != "tensorflow"
    if s.policy == "none":
        return ["nothing is seeded"]
    reasons = []
    if s.policy == "numpy_tf" and keras_engine:
        reasons.append("np.random.seed + tf.random.set_seed leave the Keras initializers drawing from Python's random")
    if s.policy == "explicit":
        if run.model.scale_layer and keras_engine:
            reasons.append("the custom scale layer's add_weight(initializer='random_normal') has no seed")
        if run.training.batch_order == "framework":
            reasons.append("the framework's shuffle draws from TensorFlow's unseeded global stream")
    return reasons


def pair_not_reproducible(pair: PairConfig) -> list[str]:
    """Why A's or B's numbers change from one fresh process to the next (empty when neither does)."""
    return sorted({reason for run in (pair.a, pair.b) for reason in not_reproducible(run)})


def _lit(value: Any) -> str:
    """Python source for a config value, strings in double quotes like the code around them."""
    text = repr(value)
    if isinstance(value, str) and text.startswith("'") and '"' not in value:
        text = '"' + text[1:-1] + '"'  # repr chose single quotes only because the text has no single quote
    return text


def _indent(lines: Lines, levels: int = 1) -> Lines:
    return [("    " * levels + line) if line else "" for line in lines]


def _wrap(line: str, width: int = 110) -> Lines:
    """A long call split after top-level commas, continued under its first argument."""
    if len(line) <= width or "(" not in line:
        return [line]
    start, depth, quote, cuts = line.index("("), 0, "", []
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 1 and i > start:
            cuts.append(i + 1)
    pieces = [line[a:b].strip() for a, b in zip([0] + cuts, cuts + [len(line)])]
    pieces[0] = line[:cuts[0]].rstrip() if cuts else line
    lines, pad = [pieces[0]], " " * (start + 1)
    for piece in pieces[1:]:
        if len(lines[-1]) + 1 + len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(pad + piece)
    return lines


def _source(fn: Callable) -> Lines:
    return inspect.getsource(fn).rstrip("\n").split("\n")


def _structure(run: RunConfig) -> tuple:
    """What decides the layers (as opposed to values inside them)."""
    m = run.model
    return (m.kind, m.hidden, m.batch_norm, m.scale_layer, m.dropout > 0, m.initializer,
            run.seeding.policy == "explicit", run.numerics.dtype == "mixed_float16")


class _Writer:
    def __init__(self, pair: PairConfig, ds):
        self.pair, self.ds = pair, ds
        self.runs = {"a": pair.a, "b": pair.b}
        self.reads: dict[str, dict[str, Any]] = {}  # RUNS entries: key -> model -> value
        self.helpers: list[Callable] = []  # core functions whose source the script carries
        self.imports = {"argparse", "hashlib", "os", "subprocess", "sys"}
        self.classify = ds.task == "classification"
        self.n_features = ds.x_train.shape[1]
        self.n_out = ds.n_classes if self.classify else 1
        self.share = pair.b_starts_from_a_init

    # -- the two tools: a value, and a choice between code paths ---------------------------

    def v(self, key: str, models, fn: Callable | None = None) -> str:
        """Code for a value: a literal where `models` agree, else run["key"] (and a RUNS entry)."""
        fn = fn or (lambda run: run.get(key))
        values = {m: fn(self.runs[m]) for m in models}
        if len({repr(x) for x in values.values()}) == 1:
            return _lit(values[models[0]])
        self.reads.setdefault(key, {}).update(values)
        return f'run["{key}"]'

    def choose(self, key: str, models, gen: Callable[[list], Lines], fn: Callable | None = None) -> Lines:
        """gen(models) once where `models` agree on fn (default: the factor at key), else an if/else on run[key]."""
        fn = fn or (lambda run: run.get(key))
        groups: dict[str, list] = {}
        for m in models:
            groups.setdefault(repr(fn(self.runs[m])), []).append(m)
        if len(groups) == 1:
            return gen(list(models))
        first, second = groups.values()
        if self.runs[first[0]].get(key) == self.runs[second[0]].get(key):  # key does not tell them apart
            key = self.key_that_differs((key.split(".")[0] + ".",))
        value = self.runs[first[0]].get(key)
        self.reads.setdefault(key, {}).update({m: self.runs[m].get(key) for m in models})
        test = (f'run["{key}"]' if value else f'not run["{key}"]') if isinstance(value, bool) \
            else f'run["{key}"] == {_lit(value)}'
        return [f"if {test}:", *_indent(gen(first) or ["pass"]), "else:", *_indent(gen(second) or ["pass"])]

    def helper(self, fn: Callable) -> str:
        if fn not in self.helpers:
            self.helpers.append(fn)
        return fn.__name__

    def key_that_differs(self, prefixes: tuple[str, ...]) -> str:
        """A factor in which B differs from A (any one tells the two apart), preferably one under `prefixes`."""
        paths = [p for p, _ in self.pair.b_differs]
        return next((p for p in paths if p.startswith(prefixes)), paths[0])

    # -- sections ----------------------------------------------------------------------------

    def set_environment(self) -> Lines:
        notes = {
            "KERAS_BACKEND": "Keras 3 runs on TensorFlow",
            "TF_ENABLE_ONEDNN_OPTS": 'oneDNN CPU kernels: "1" on, "0" off, None = TensorFlow\'s default',
            "TF_USE_LEGACY_KERAS": '"1": tf.keras is the legacy Keras 2 (tf_keras) in this process',
        }
        lines = ["def set_environment(run):",
                 '    """Variables TensorFlow reads once, when it is imported: set before `import tensorflow`."""',
                 "    env = {"]
        for key, note in notes.items():
            value = self.v(key, MODELS, lambda run: dict(worker_env(run))[key])
            lines += [f"        # {note}", f'        "{key}": {value},']
        lines.append("    }")
        cpu = 'env["CUDA_VISIBLE_DEVICES"] = "-1"  # device cpu: TensorFlow sees no GPU'
        lines += _indent(self.choose("numerics.device", MODELS, lambda ms: [cpu] if self.runs[ms[0]].numerics.device
                                     == "cpu" else [], fn=lambda run: run.numerics.device == "cpu"))
        return lines + [
            '    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # fewer TensorFlow log lines',
            "    for key, value in env.items():",
            "        if value is None:",
            "            os.environ.pop(key, None)",
            "        else:",
            "            os.environ[key] = value",
        ]

    def configure_tensorflow(self) -> Lines:
        intra, inter = self.v("numerics.intra_threads", MODELS), self.v("numerics.inter_threads", MODELS)
        lines = ["def configure_tensorflow(run):",
                 '    """Settings TensorFlow takes only before its first op."""',
                 "    import tensorflow as tf", "",
                 "    # Threads per op and ops at once (0 = TF decides): how an op splits its sums can change them.",
                 f"    tf.config.threading.set_intra_op_parallelism_threads({intra})",
                 f"    tf.config.threading.set_inter_op_parallelism_threads({inter})",
                 '    gpus = tf.config.list_physical_devices("GPU")']
        lines += _indent(self.choose("numerics.device", MODELS, lambda ms: [
            "if not gpus:", '    raise SystemExit("numerics.device is gpu, but TensorFlow sees no GPU")']
            if self.runs[ms[0]].numerics.device == "gpu" else [], fn=lambda run: run.numerics.device == "gpu"))
        lines += ["    for gpu in gpus:",
                  "        tf.config.experimental.set_memory_growth(gpu, True)  # take GPU memory as needed",
                  f"    tf.config.experimental.enable_tensor_float_32_execution({self.v('numerics.tf32', MODELS)})"
                  "  # TF32 matmuls on Ampere+ GPUs"]
        return lines + _indent(self.choose("numerics.op_determinism", MODELS, lambda ms: [
            "tf.config.experimental.enable_op_determinism()  # deterministic kernels; there is no way back"]
            if self.runs[ms[0]].numerics.op_determinism else []))

    def load_data(self) -> Lines:
        d, ds = self.pair.data, self.ds
        imports, body = [], []
        loaders = {"digits": "load_digits", "breast_cancer": "load_breast_cancer", "diabetes": "load_diabetes"}
        if d.dataset in loaders:
            imports.append(f"from sklearn.datasets import {loaders[d.dataset]}")
            body += [f"x, y = {loaders[d.dataset]}(return_X_y=True)",
                     f"x, y = x.astype(np.float64), y.astype({'np.int64' if self.classify else 'np.float64'})"]
        elif d.dataset == "moons":
            imports.append("from sklearn.datasets import make_moons")
            body += [f"x, y = make_moons(n_samples={d.n_samples}, noise={d.noise!r}, random_state={d.data_seed})",
                     "y = y.astype(np.int64)"]
        elif d.dataset == "spirals":
            body.append(f"x, y = {self.helper(data_module.spirals)}({d.n_samples}, {d.noise!r}, {d.data_seed})")
        elif d.dataset == "series":
            body.append(f"x, y = {self.helper(data_module.series_windows)}({d.n_samples}, {d.window}, {d.noise!r}, "
                        f"{d.data_seed})")
        else:
            self.imports.add("pandas")
            imports.append("import pandas as pd")
            target = _lit(d.csv_target)
            body += [f"frame = pd.read_csv(CSV_PATH).dropna(subset=[{target}])  # rows need a target",
                     f"x = frame.drop(columns=[{target}]).to_numpy(dtype=np.float64)"]
            if self.classify:
                labels = f"frame[{target}]" if _numeric_csv_labels(d.csv_path, d.csv_target) \
                    else f"frame[{target}].astype(str)"
                body += [f"classes, y = np.unique({labels}, return_inverse=True)  # class ids 0..k-1, sorted",
                         "y = y.astype(np.int64)"]
            else:
                body.append(f"y = frame[{target}].to_numpy(dtype=np.float64)")
        if d.missing_rate > 0:
            body.append(f"x = {self.helper(data_module.inject_missing)}(x, {d.missing_rate!r}, {d.missing_seed})"
                        f"  # {d.missing_rate:.0%} of the input cells blanked, before the split")
        if d.dataset == "series":
            body += ["# chronological: the last part is forecast",
                     f"n_test = max(1, int(round(len(x) * {d.test_fraction!r})))",
                     "return x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]"]
        else:
            stratify = self.classify and np.bincount(np.concatenate([ds.y_train, ds.y_test])).min() >= 2
            imports.append("from sklearn.model_selection import train_test_split")
            body.append(f"x_train, x_test, y_train, y_test = train_test_split(x, y, test_size={d.test_fraction!r}, "
                        f"random_state={d.split_seed}, stratify={'y' if stratify else 'None'})")
            if d.dataset == "diabetes":
                body += ["mean, std = y_train.mean(), y_train.std()  # the target, standardised by the training split",
                         "y_train, y_test = (y_train - mean) / std, (y_test - mean) / std"]
            body.append("return x_train, y_train, x_test, y_test")
        return ["def load_data():", f'    """{ds.description}."""', *_indent(imports), "", *_indent(body)]

    def preprocess(self) -> Lines:
        lines = ["def preprocess(run, x_train, y_train, x_test):",
                 '    """Missing values, then scaling, computed in the dtype the model is given."""',
                 f"    x_train, x_test = x_train.astype({self.v('preprocess.input_dtype', MODELS)}), "
                 f"x_test.astype({self.v('preprocess.input_dtype', MODELS)})"]
        if np.isnan(self.ds.x_train).any() or np.isnan(self.ds.x_test).any():
            lines += _indent(self._rows("fill_rows", MODELS, "the test rows shape the fill values too (leakage)"))
            lines += _indent(self.choose("preprocess.impute", MODELS, self._impute,
                                         fn=lambda run: run.preprocess.impute == "drop"))
        lines += _indent(self.choose("preprocess.scaler", MODELS, self._scale, fn=_scaler_kind))
        return lines + ["    return x_train, y_train, x_test"]

    def _rows(self, name: str, ms, leak: str) -> Lines:
        """`name = ` the rows a statistic is fitted on, where any model fits on all rows."""
        if all(self.runs[m].preprocess.fit_on == "train" for m in ms):
            return []
        return self.choose("preprocess.fit_on", ms, lambda g: [
            f"{name} = x_train" if self.runs[g[0]].preprocess.fit_on == "train" else
            f"{name} = np.vstack([x_train, x_test])  # {leak}"])

    def _impute(self, ms) -> Lines:
        fill, missing = self.helper(preprocess.column_fill), self.helper(preprocess.fill_missing)
        rows = "x_train" if all(self.runs[m].preprocess.fit_on == "train" for m in MODELS) else "fill_rows"
        self.imports.add("warnings")
        if self.runs[ms[0]].preprocess.impute == "drop":
            return ["# 'drop': training rows with a missing value go; test rows get the mean (to score A and B alike)",
                    f'fill = {fill}({rows}, "mean")',
                    "keep = ~np.isnan(x_train).any(axis=1)",
                    "x_train, y_train = x_train[keep], y_train[keep]",
                    f"x_test = {missing}(x_test, fill)"]
        return [f"fill = {fill}({rows}, {self.v('preprocess.impute', ms)})  # one value per column",
                f"x_train, x_test = {missing}(x_train, fill), {missing}(x_test, fill)"]

    def _scale(self, ms) -> Lines:
        kind, run = _scaler_kind(self.runs[ms[0]]), self.runs[ms[0]]
        if kind == "none":
            return ["# no scaling"]
        lines = self._rows("fit_rows", ms, "the scaler sees the test rows too (leakage)")
        rows = "fit_rows" if lines else "x_train"
        if kind == "keras":
            module = "tf_keras as keras" if run.engine.name == "tf_keras" else "keras"
            return lines + [f"import {module}  # the run's Keras", "",
                            "layer = keras.layers.Normalization()  # adapts population statistics",
                            f"layer.adapt({rows})",
                            "x_train, x_test = np.asarray(layer(x_train)), np.asarray(layer(x_test))"]
        if run.preprocess.scaler == "minmax":
            why = "min-max: each column mapped to [0, 1]"
        else:
            why = factor("preprocess.scaler").mechanism.split("; ")[0]
        stats, scaler = self.helper(preprocess.scaler_stats), self.v("preprocess.scaler", ms)
        return lines + [f"# {why}",
                        f"shift, scale = {stats}({rows}, {scaler})",
                        "x_train, x_test = (x_train - shift) / scale, (x_test - shift) / scale"]

    def start_b_from_a(self) -> Lines:
        self.imports.add("time")
        return _template(START_B_FROM_A)

    def train_keras(self, ms) -> Lines:
        lines = ["def train_keras(model_name, run, x_train, y_train, x_test, out_dir):",
                 '    """model.fit, as Keras users write it."""',
                 "    import tensorflow as tf"]
        lines += _indent(self.choose("engine.name", ms, lambda g: [
            "import tf_keras as keras  # legacy Keras 2: what tf.keras was up to TensorFlow 2.15"
            if self.runs[g[0]].engine.name == "tf_keras" else "import keras  # Keras 3"])) + [""]
        lines += _indent(self.choose("numerics.dtype", ms, lambda g: {
            "float64": ['keras.backend.set_floatx("float64")  # weights and computation in float64'],
            "mixed_float16": ['keras.mixed_precision.set_global_policy("mixed_float16")  # float16 math'],
        }.get(self.runs[g[0]].numerics.dtype, [])))
        lines += _indent(self.choose("seeding.policy", ms, self._keras_seeding))
        lines += _indent(self.choose("model.hidden", ms, self._keras_model,
                                     fn=_structure))
        lines += ["    names, variables = named_weights(model)"]
        self.helper(engine_keras.named_weights)
        if self.share:
            lines += ["    start_b_from_a(model_name, out_dir, names, variables)"]
        lines += _indent(self.choose("optimizer.name", ms, self._keras_optimizer))
        loss, metric = ("SparseCategoricalCrossentropy", "SparseCategoricalAccuracy") if self.classify \
            else ("MeanSquaredError", "MeanAbsoluteError")
        metric_name, metric_key = ("accuracy", "accuracy") if self.classify else ("mean abs error", "mae")
        jit = self.v("jit_compile", ms, lambda run: engine_keras.JIT[run.engine.name][run.numerics.xla])
        epochs, batch = self.v("training.epochs", ms), self.v("training.batch_size", ms)
        lines += [f"    steps = -(-len(x_train) // {batch})  # batches per epoch",
                  "    # jit_compile: XLA; Keras 3's \"auto\" turns it on only with a GPU (Keras 2: None = off).",
                  "    # steps_per_execution=steps: one call into TF per epoch; the same updates as one per batch.",
                  *_wrap(f"    model.compile(optimizer=optimizer, loss=keras.losses.{loss}(), "
                         f"metrics=[keras.metrics.{metric}(name={_lit(metric_key)})], jit_compile={jit}, "
                         "steps_per_execution=steps)"),
                  "    stop = keras.callbacks.TerminateOnNaN()  # the app stops a run whose loss goes non-finite, too",
                  "    report = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(",
                  f"        f\"{{model_name}}: epoch {{epoch + 1}}: loss {{logs['loss']:.6g}}, {metric_name} "
                  f"{{logs['{metric_key}']:.4g}}\"))"]
        lines += _indent(self.choose("training.batch_order", ms, lambda g: self._keras_fit(g, epochs, batch),
                                     fn=lambda run: run.training.batch_order == "fixed"))
        return lines + ["    predictions = np.asarray(model(x_test, training=False), dtype=np.float64)",
                        "    return names, [v.numpy() for v in variables], predictions"]

    def _keras_seeding(self, ms) -> Lines:
        policy, seed = self.runs[ms[0]].seeding.policy, self.v("seeding.seed", ms)
        return {
            "keras": ["# Seeds Python's random, NumPy and TF (Keras 3's unseeded initializers draw from Python's).",
                      f"keras.utils.set_random_seed({seed})"],
            "numpy_tf": [f"np.random.seed({seed})",
                         f"tf.random.set_seed({seed})  # the classic advice; it does not fix Keras's initial weights"],
            "explicit": ["# Seeds: explicit seed= on every built-in initializer and dropout layer; nothing global."],
            "none": ["# No seeding: initial weights, dropout masks and fit's shuffle change from run to run."],
        }[policy]

    def _keras_model(self, ms) -> Lines:
        run = self.runs[ms[0]]
        m, explicit = run.model, run.seeding.policy == "explicit"

        def seed(i):
            s = self.v("seeding.seed", ms)
            return f"seed={s} + {i}" if not s.isdigit() else f"seed={int(s) + i}"

        def init(i):
            args = (["stddev=0.05"] if m.initializer == "random_normal" else []) + ([seed(i)] if explicit else [])
            return f"keras.initializers.{engine_keras.INITIALIZERS[m.initializer]}({', '.join(args)})"

        act = self.v("model.activation", ms)
        layers = [f"keras.Input(shape=({self.n_features},))"]
        if m.scale_layer:
            layers.append(f'{self.helper(engine_keras.scale_layer_class)}(keras)(name="scale")')
        if m.kind == "cnn":
            layers += [f"keras.layers.Reshape({self.ds.image_shape + (1,)})",
                       f'keras.layers.Conv2D(8, 3, activation={act}, kernel_initializer={init(90)}, name="conv_0")',
                       "keras.layers.MaxPooling2D(2)", "keras.layers.Flatten()"]
        if m.kind == "gru":
            orthogonal = f"keras.initializers.Orthogonal({seed(91) if explicit else ''})"
            layers += [f"keras.layers.Reshape(({self.n_features}, 1))",
                       f'keras.layers.GRU(16, kernel_initializer={init(90)}, recurrent_initializer={orthogonal}, '
                       'name="gru_0")']
        for i, units in enumerate(m.hidden):
            if m.batch_norm:
                layers += [f'keras.layers.Dense({units}, kernel_initializer={init(i)}, name="dense_{i}")',
                           f'keras.layers.BatchNormalization(name="bn_{i}")', f"keras.layers.Activation({act})"]
            else:
                layers.append(f'keras.layers.Dense({units}, activation={act}, kernel_initializer={init(i)}, '
                              f'name="dense_{i}")')
            if m.dropout > 0:
                layers.append(f"keras.layers.Dropout({self.v('model.dropout', ms)}, "
                              f"{seed(100 + i) + ', ' if explicit else ''}name=\"dropout_{i}\")")
        out = [str(self.n_out)] + (['activation="softmax"'] if self.classify else []) + \
            [f"kernel_initializer={init(len(m.hidden))}", 'name="output"'] + \
            (['dtype="float32"'] if run.numerics.dtype == "mixed_float16" else [])
        layers.append(f"keras.layers.Dense({', '.join(out)})")
        return ["model = keras.Sequential(["] + [w for layer in layers for w in _wrap(f"    {layer},")] + ["])"]

    def _keras_optimizer(self, ms) -> Lines:
        name = self.runs[ms[0]].optimizer.name
        args = {"adam": ("beta_1", "beta_2", "epsilon", "amsgrad"), "sgd": ("momentum", "nesterov"),
                "rmsprop": ("rho", "momentum", "epsilon"), "adagrad": ("initial_accumulator", "epsilon")}[name]
        text = [f"learning_rate={self.v('optimizer.learning_rate', ms)}"]
        for arg in args:
            keyword = "initial_accumulator_value" if arg == "initial_accumulator" else arg
            text.append(f"{keyword}={self.v(f'optimizer.{arg}', ms)}")
        for clip in ("clipnorm", "clipvalue"):
            value = self.v(f"optimizer.{clip}", ms)
            if value != "0.0":
                text.append(f"{clip}={value}" + (" or None" if value.startswith("run") else ""))
        cls = OPTIMIZER_CLASSES[name]
        return _wrap(f"optimizer = keras.optimizers.{cls}({', '.join(text)})")

    def _keras_fit(self, ms, epochs: str, batch: str) -> Lines:
        callbacks = "callbacks=[stop, report], verbose=0"
        if self.runs[ms[0]].training.batch_order == "fixed":
            return [
                "# The fixed batch order: a NumPy permutation per epoch; fit goes through the batches as given.",
                f"orders = np.stack({self.helper(recording.fixed_orders)}(len(x_train), {epochs}, "
                f"{self.v('training.shuffle_seed', ms)}))",
                "batches = tf.data.Dataset.from_tensor_slices(orders).flat_map(",
                "    lambda order: tf.data.Dataset.from_tensor_slices(",
                f"        (tf.gather(x_train, order), tf.gather(y_train, order))).batch({batch}))",
                f"model.fit(batches, epochs={epochs}, steps_per_epoch=steps, shuffle=False, {callbacks})"]
        shuffle = self.v("fit_shuffle", ms, lambda run: run.training.batch_order == "framework")
        return (["# shuffle=True: fit's own shuffle, drawn from TensorFlow's global seed"]
                if shuffle in ("True", 'run["fit_shuffle"]') else []) + [
            f"model.fit(x_train, y_train, batch_size={batch}, epochs={epochs}, shuffle={shuffle}, {callbacks})"]

    def train_tensorflow(self, ms) -> Lines:
        self.imports.add("random")
        run0 = self.runs[ms[0]]
        dtype = self.v("dtype", ms, lambda run: "float64" if run.numerics.dtype == "float64" else "float32")
        forms = {self.runs[m].engine.raw_optimizer for m in ms}
        form = {"kernels": "TensorFlow's own optimizer kernels (tf.raw_ops.ResourceApplyAdam & co)",
                "textbook": "the textbook (PyTorch) optimizer update written in TF ops"}[run0.engine.raw_optimizer]
        if len(forms) > 1:
            form = "either TensorFlow's own optimizer kernels or the textbook (PyTorch) update in TF ops"
        doc = textwrap.fill(f'"""No Keras: tf.Variable weights, tf.GradientTape, a tf.function training step and '
                            f'{form}."""', 100, initial_indent="    ", subsequent_indent="    ")
        lines = ["def train_tensorflow(model_name, run, x_train, y_train, x_test, out_dir):", *doc.split("\n"),
                 "    import tensorflow as tf", "",
                 f"    dtype = tf.as_dtype({dtype})" if dtype.startswith("run") else f"    dtype = tf.{dtype[1:-1]}"]
        if any(self.runs[m].numerics.dtype == "mixed_float16" for m in ms):
            lines[-1] += "  # mixed_float16: this loop has no loss scaling, so it runs in float32"
        lines += _indent(self.choose("seeding.policy", ms, self._tf_seeding,
                                     fn=lambda run: run.seeding.policy in ("keras", "numpy_tf") or run.seeding.policy))
        lines += [""] + _indent(self.choose("model.initializer", ms, self._tf_initializer,
                                            fn=lambda run: (run.model.initializer, run.seeding.policy == "explicit")))
        lines += [""] + _indent(self.choose("model.hidden", ms, self._tf_model,
                                            fn=_structure))
        lines += [""] + _indent(self._tf_loss())
        lines += ["", "    trainable = [var for var in w.values() if var.trainable]"]
        lines += _indent(self._tf_optimizer(ms))
        lines += [""] + _indent(self.choose("numerics.xla", ms, self._tf_jit, fn=_tf_jit_code))
        lines += _indent(self._tf_loop(ms))
        return lines + ["    return list(w), [var.numpy() for var in w.values()], predictions"]

    def _tf_seeding(self, ms) -> Lines:
        policy, seed = self.runs[ms[0]].seeding.policy, self.v("seeding.seed", ms)
        if policy in ("keras", "numpy_tf"):
            return [f"random.seed({seed})", f"np.random.seed({seed})",
                    f"tf.random.set_seed({seed})  # initial weights, dropout and shuffles draw from TF's seeded stream"]
        if policy == "explicit":
            return [f"# Seeds: stateless random ops seeded with ({seed}, i); nothing global."]
        return ["# No seeding: initial weights, dropout masks and shuffles change from run to run."]

    def _draw(self, ms, kind: str, shape: str, args: str, i: str) -> str:
        """A TF random draw: the global-seeded op, or its stateless twin under explicit seeds."""
        if self.runs[ms[0]].seeding.policy == "explicit":
            return f"tf.random.stateless_{kind}({shape}, [{self.v('seeding.seed', ms)}, {i}], {args}, dtype=dtype)"
        return f"tf.random.{kind}({shape}, {args}, dtype=dtype)"

    def _tf_initializer(self, ms) -> Lines:
        name = self.runs[ms[0]].model.initializer
        lines = ["def init_kernel(shape, i):",
                 f'    """Keras\'s {engine_keras.INITIALIZERS[name]} formula, drawn with TensorFlow random ops."""']
        if name == "random_normal":
            return lines + [f"    return {self._draw(ms, 'normal', 'shape', 'stddev=0.05', 'i')}"]
        fans = "(fan_in + fan_out)" if name.startswith("glorot") else "fan_in"
        lines.append("    fan_in, fan_out = shape")
        if name.endswith("uniform"):
            return lines + [f"    limit = np.sqrt(6.0 / {fans})",
                            f"    return {self._draw(ms, 'uniform', 'shape', '-limit, limit', 'i')}"]
        return lines + [f"    stddev = np.sqrt(2.0 / {fans}) / 0.87962566103423978  # corrected for the truncation",
                        f"    return {self._draw(ms, 'truncated_normal', 'shape', 'stddev=stddev', 'i')}"]

    def _tf_model(self, ms) -> Lines:
        run = self.runs[ms[0]]
        m = run.model
        lines = ["# The weights, named and ordered as the Keras engines name and order them."]
        lines += ["w = {}"]
        if m.scale_layer:
            draw = self._draw(ms, "normal", f"({self.n_features},)", "stddev=0.05", "999")
            lines += ["# the custom scale layer's weights, drawn first", f'w["scale/w"] = tf.Variable({draw})']
        lines += [f"fan_in = {self.n_features}",
                  f"for i, units in enumerate({self.v('model.hidden', ms)}):",
                  '    w[f"dense_{i}/kernel"] = tf.Variable(init_kernel((fan_in, units), i))',
                  '    w[f"dense_{i}/bias"] = tf.Variable(tf.zeros(units, dtype))']
        if m.batch_norm:
            lines += ['    w[f"bn_{i}/gamma"] = tf.Variable(tf.ones(units, dtype))',
                      '    w[f"bn_{i}/beta"] = tf.Variable(tf.zeros(units, dtype))',
                      '    w[f"bn_{i}/moving_mean"] = tf.Variable(tf.zeros(units, dtype), trainable=False)',
                      '    w[f"bn_{i}/moving_variance"] = tf.Variable(tf.ones(units, dtype), trainable=False)']
        lines += ["    fan_in = units",
                  f'w["output/kernel"] = tf.Variable(init_kernel((fan_in, {self.n_out}), {len(m.hidden)}))',
                  f'w["output/bias"] = tf.Variable(tf.zeros({self.n_out}, dtype))']
        if self.share:
            lines += ["start_b_from_a(model_name, out_dir, list(w), list(w.values()))"]
        lines += [""]
        act = self.v("model.activation", ms)
        if act.startswith("run"):
            lines += [f'activation = tf.sigmoid if {act} == "sigmoid" else getattr(tf.nn, {act})']
        else:
            lines += ["activation = " + ("tf.sigmoid" if m.activation == "sigmoid" else f"tf.nn.{m.activation}")]
        if m.batch_norm:
            mom, eps = engine_tf.BN_MOMENTUM, engine_tf.BN_EPSILON
            lines += ["", "def batch_norm(h, i, training):",
                      f'    """Keras BatchNormalization\'s arithmetic (momentum {mom}, epsilon {eps})."""',
                      '    gamma, beta = w[f"bn_{i}/gamma"], w[f"bn_{i}/beta"]',
                      '    moving_mean, moving_var = w[f"bn_{i}/moving_mean"], w[f"bn_{i}/moving_variance"]',
                      "    if not training:",
                      f"        return tf.nn.batch_normalization(h, moving_mean, moving_var, beta, gamma, {eps})",
                      "    mean, var = tf.nn.moments(h, axes=[0])",
                      f"    moving_mean.assign(moving_mean * {mom} + mean * (1 - {mom}))",
                      f"    moving_var.assign(moving_var * {mom} + var * (1 - {mom}))",
                      f"    return tf.nn.batch_normalization(h, mean, var, beta, gamma, {eps})"]
        lines += ["", "def forward(x, training):",
                  '    h = x * w["scale/w"]' if m.scale_layer else "    h = x",
                  f"    for i in range({len(m.hidden)}):",
                  '        h = tf.matmul(h, w[f"dense_{i}/kernel"]) + w[f"dense_{i}/bias"]']
        if m.batch_norm:
            lines += ["        h = batch_norm(h, i, training)"]
        lines += ["        h = activation(h)"]
        if m.dropout > 0:
            seed = ""
            if run.seeding.policy == "explicit":
                s = self.v("seeding.seed", ms)
                seed = f", seed={s} + 100 + i"
            rate = self.v("model.dropout", ms)
            lines += ["        if training:", f"            h = tf.nn.dropout(h, rate={rate}{seed})"]
        return lines + ['    return tf.matmul(h, w["output/kernel"]) + w["output/bias"]']

    def _tf_loss(self) -> Lines:
        if self.classify:
            return ["def loss_and_hits(x, y):",
                    "    logits = forward(x, True)",
                    "    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)",
                    "    hits = tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=y.dtype), y), dtype)",
                    "    return tf.reduce_mean(losses), tf.reduce_sum(hits)"]
        return ["def loss_and_hits(x, y):",
                "    err = y - forward(x, True)[:, 0]",
                "    return tf.reduce_mean(tf.square(err)), tf.reduce_sum(tf.abs(err))"]

    def _tf_optimizer(self, ms) -> Lines:
        """The optimizer's slots and apply_gradients: TF's fused kernel or the textbook update, per variable."""
        lines = self.choose("optimizer.name", ms, self._tf_slots, fn=lambda run: _slots(run)[0])
        if any(self.runs[m].optimizer.name == "adam" for m in ms):
            lines.append("step = tf.Variable(0, dtype=tf.int64, trainable=False)")
        body = ["def c(x):  # hyperparameters as constants in the weights' dtype",
                "    return tf.constant(x, dtype)", ""]
        if any(self.runs[m].optimizer.name == "adam" for m in ms):
            body += ["step.assign_add(1)", "t = tf.cast(step, dtype)"]
        body += self.choose("optimizer.clipnorm", ms, self._tf_clip,
                            fn=lambda run: "norm" if run.optimizer.clipnorm > 0 else run.optimizer.clipvalue > 0)
        body.append("for i, (g, var) in enumerate(zip(grads, trainable)):")
        body += _indent(self.choose("engine.raw_optimizer", ms, lambda g: self.choose(
            "optimizer.name", g, self._tf_update, fn=_update_form)))
        return lines + ["", "def apply_gradients(grads):"] + _indent(body)

    def _tf_slots(self, ms) -> Lines:
        names, note = _slots(self.runs[ms[0]])
        lines = [f"# Optimizer state, one slot per weight: {note}"] if names else []
        for slot in names:
            fill = "tf.zeros_like(var)"
            if self.runs[ms[0]].optimizer.name == "adagrad":
                fill = f"tf.fill(var.shape, tf.constant({self.v('optimizer.initial_accumulator', ms)}, dtype))"
            lines.append(f"{slot} = [tf.Variable({fill}, trainable=False) for var in trainable]")
        return lines

    def _tf_update(self, ms) -> Lines:
        run = self.runs[ms[0]]

        def c(name):
            return f"c({self.v('optimizer.' + name, ms)})"

        return self._tf_kernel(run.optimizer, c) if run.engine.raw_optimizer == "kernels" \
            else self._tf_textbook(run.optimizer, c)

    def _tf_clip(self, ms) -> Lines:
        o = self.runs[ms[0]].optimizer
        if o.clipnorm > 0:
            norm = self.v("optimizer.clipnorm", ms)
            return ["def clip(g):  # Keras 3's clipnorm, per variable: g * clipnorm / max(||g||, clipnorm)",
                    "    l2sum = tf.reduce_sum(tf.square(g), keepdims=True)",
                    "    l2norm = tf.where(l2sum > 0, tf.sqrt(tf.where(l2sum > 0, l2sum, tf.ones_like(l2sum))), l2sum)",
                    f"    return g * {norm} / tf.maximum(l2norm, {norm})",
                    "", "grads = [clip(g) for g in grads]"]
        if o.clipvalue > 0:
            value = self.v("optimizer.clipvalue", ms)
            return [f"grads = [tf.clip_by_value(g, -{value}, {value}) for g in grads]"]
        return []

    @staticmethod
    def _tf_kernel(o, c) -> Lines:
        raw = "tf.raw_ops."
        if o.name == "adam":
            vhat = ", vhat=vmax[i].handle" if o.amsgrad else ""
            op = "ResourceApplyAdamWithAmsgrad" if o.amsgrad else "ResourceApplyAdam"
            return [f"{raw}{op}(var=var.handle, m=m[i].handle, v=v[i].handle{vhat},",
                    f"    beta1_power={c('beta_1')} ** t, beta2_power={c('beta_2')} ** t, lr={c('learning_rate')},",
                    f"    beta1={c('beta_1')}, beta2={c('beta_2')}, epsilon={c('epsilon')}, grad=g)"]
        if o.name == "sgd":
            if o.momentum > 0:
                return [f"{raw}ResourceApplyKerasMomentum(var=var.handle, accum=m[i].handle, lr={c('learning_rate')}, "
                        f"grad=g, momentum={c('momentum')}, use_nesterov={o.nesterov})"]
            return [f"{raw}ResourceApplyGradientDescent(var=var.handle, alpha={c('learning_rate')}, delta=g)"]
        if o.name == "rmsprop":
            return [f"{raw}ResourceApplyRMSProp(var=var.handle, ms=v[i].handle, mom=m[i].handle, "
                    f"lr={c('learning_rate')},",
                    f"    rho={c('rho')}, momentum={c('momentum')}, epsilon={c('epsilon')}, grad=g)"]
        return [f"{raw}ResourceApplyAdagradV2(var=var.handle, accum=v[i].handle, lr={c('learning_rate')}, "
                f"epsilon={c('epsilon')}, grad=g)"]

    @staticmethod
    def _tf_textbook(o, c) -> Lines:
        lr, eps = c("learning_rate"), c("epsilon")
        if o.name == "adam":
            b1, b2 = c("beta_1"), c("beta_2")
            second = "vmax[i]" if o.amsgrad else "v[i]"
            return [f"m[i].assign({b1} * m[i] + (1 - {b1}) * g)",
                    f"v[i].assign({b2} * v[i] + (1 - {b2}) * tf.square(g))",
                    *(["vmax[i].assign(tf.maximum(vmax[i], v[i]))  # AMSGrad"] if o.amsgrad else []),
                    f"m_hat, v_hat = m[i] / (1 - {b1} ** t), {second} / (1 - {b2} ** t)  # bias-corrected",
                    f"var.assign_sub({lr} * m_hat / (tf.sqrt(v_hat) + {eps}))"]
        if o.name == "sgd":
            mom = c("momentum")
            return [f"m[i].assign({mom} * m[i] + g)",
                    f"var.assign_sub({lr} * (g + {mom} * m[i]))" if o.nesterov else f"var.assign_sub({lr} * m[i])"]
        if o.name == "rmsprop":
            rho = c("rho")
            return [f"v[i].assign({rho} * v[i] + (1 - {rho}) * tf.square(g))",
                    f"m[i].assign({c('momentum')} * m[i] + g / (tf.sqrt(v[i]) + {eps}))  # epsilon outside the root",
                    f"var.assign_sub({lr} * m[i])"]
        return ["v[i].assign_add(tf.square(g))", f"var.assign_sub({lr} * g / (tf.sqrt(v[i]) + {eps}))"]

    def _tf_jit(self, ms) -> Lines:
        return [f"jit = {_tf_jit_code(self.runs[ms[0]])}"]

    def _tf_loop(self, ms) -> Lines:
        epochs, batch = self.v("training.epochs", ms), self.v("training.batch_size", ms)
        y_type = "np.int64" if self.classify else "x_train.dtype"
        lines = ["", "@tf.function(jit_compile=jit)", "def train_step(x, y):",
                 "    with tf.GradientTape() as tape:",
                 "        loss, hits = loss_and_hits(x, y)",
                 "    apply_gradients(tape.gradient(loss, trainable))",
                 "    return loss, hits", "",
                 "@tf.function(jit_compile=jit)", "def predict(x):",
                 "    return tf.nn.softmax(forward(x, False))" if self.classify else "    return forward(x, False)", "",
                 "x_train, x_test = x_train.astype(dtype.as_numpy_dtype), x_test.astype(dtype.as_numpy_dtype)",
                 f"y_train = y_train.astype({y_type})",
                 "n = len(x_train)"]
        orders = self.choose("training.batch_order", ms, lambda g: {
            "fixed": [f"orders = {self.helper(recording.fixed_orders)}(n, {epochs}, "
                      f"{self.v('training.shuffle_seed', g)})"
                      "  # one NumPy permutation per epoch"],
        }.get(self.runs[g[0]].training.batch_order, []), fn=lambda run: run.training.batch_order == "fixed")
        lines += orders + [f"for epoch in range({epochs}):"]
        lines += _indent(self.choose("training.batch_order", ms, lambda g: [{
            "fixed": "order = orders[epoch]",
            "framework": "order = tf.random.shuffle(tf.range(n)).numpy()  # like fit's shuffle: TF's global seed",
            "none": "order = np.arange(n)  # no shuffling"}[self.runs[g[0]].training.batch_order]]))
        metric = "accuracy" if self.classify else "mean abs error"
        return lines + _indent([
            "loss_sum = hit_sum = 0.0",
            f"for start in range(0, n, {batch}):",
            f"    idx = order[start:start + {batch}]",
            "    loss, hits = train_step(x_train[idx], y_train[idx])",
            "    loss_sum += float(loss) * len(idx)",
            "    hit_sum += float(hits)",
            f'print(f"{{model_name}}: epoch {{epoch + 1}}: loss {{loss_sum / n:.6g}}, {metric} {{hit_sum / n:.4g}}")',
            "if not np.isfinite(loss_sum):",
            "    break  # the loss went non-finite: stop, as the app does"]) + [
            "predictions = np.asarray(predict(x_test), dtype=np.float64)"]

    def train_one(self) -> Lines:
        lines = ["def train_one(model_name, out_dir):",
                 '    """Train one model in this process and save its final weights and test predictions."""',
                 "    run = RUNS[model_name]",
                 "    set_environment(run)  # before TensorFlow is imported",
                 "    configure_tensorflow(run)  # before its first op",
                 "    os.makedirs(out_dir, exist_ok=True)",
                 "    x_train, y_train, x_test, y_test = load_data()",
                 "    x_train, y_train, x_test = preprocess(run, x_train, y_train, x_test)"]
        call = "(model_name, run, x_train, y_train, x_test, out_dir)"
        lines += _indent(self.choose("engine.name", MODELS, lambda g: [
            f"names, weights, predictions = train_{_family(self.runs[g[0]])}{call}"], fn=_family))
        if self.classify:
            lines += ['    print(f"{model_name}: test accuracy {np.mean(predictions.argmax(axis=1) == y_test):.4f}")']
        else:
            lines += ['    error = np.mean(np.abs(predictions[:, 0] - y_test))',
                      '    print(f"{model_name}: test mean abs error {error:.4g}")']
        digest = self.helper(weights_digest)
        return lines + [f'    print(f"{{model_name}}: final weights digest {{{digest}(dict(zip(names, weights)))}}")',
                        '    np.savez(os.path.join(out_dir, f"{model_name}.npz"), **dict(zip(names, weights)), '
                        "test_predictions=predictions)"]

    def train_both(self) -> Lines:
        lines = _template(TRAIN_BOTH)
        if not self.share:  # no initial weights to hand over
            lines = [line for line in lines if not line.endswith("# share")]
        return [line.removesuffix("  # share") for line in lines]

    # -- the whole file ----------------------------------------------------------------------

    def script(self) -> str:
        families = {m: _family(self.runs[m]) for m in MODELS}
        sections = [self.set_environment(), self.configure_tensorflow(), self.load_data(), self.preprocess()]
        if self.share:
            sections.append(self.start_b_from_a())
        for family in ("keras", "tensorflow"):
            ms = [m for m in MODELS if families[m] == family]
            if ms:
                sections.append(getattr(self, f"train_{family}")(ms))
        sections += [self.train_one(), self.train_both()]
        helpers = [line for fn in self.helpers for line in _source(fn) + ["", ""]]
        body = [line for section in sections + [_template(MAIN)] for line in section + ["", ""]]
        config = ["# The pair as Divergence Lab validated it (for reference; the code above is written out from it):"]
        config += [f"# {line}" for line in self.pair.to_json().splitlines()]
        parts = [self.docstring(), "", self.import_lines(), "", *self.runs_lines(), "", "",
                 *(["# Helpers copied from Divergence Lab's own code, so that the arithmetic matches to the bit.", ""]
                   + helpers if helpers else []),
                 *body, *config, "", "", 'if __name__ == "__main__":', "    sys.exit(main())", ""]
        return "\n".join(parts)

    def import_lines(self) -> str:
        std = sorted(i for i in self.imports if i != "pandas")
        return "\n".join([f"import {name}" for name in std] + ["", "import numpy as np"])

    def runs_lines(self) -> Lines:
        lines = ["# Where A and B differ, the code reads run[...] from here; what they share is written in place.",
                 "RUNS = {"]
        for m in MODELS:
            entries = ", ".join(f'"{key}": {_lit(values[m])}' for key, values in sorted(self.reads.items()))
            lines.append(f'    "{m}": {{{entries}}},')
        lines.append("}")
        if self.pair.data.dataset == "csv":
            lines += ["# The CSV the pair was trained on: point this at your copy of the file.",
                      f"CSV_PATH = {_lit(self.pair.data.csv_path)}"]
        return lines

    def docstring(self) -> str:
        d, a = self.pair.data, self.pair.a
        missing = f", {d.missing_rate:.0%} of the inputs missing" if d.missing_rate else ""
        notes = [f"Data: {self.ds.description}{missing}.", f"A: {_describe(a)}."]
        if self.pair.b_differs:
            notes.append("B differs from A in:")
            for path, value in self.pair.b_differs:
                f = factor(path)
                notes.append(f"  - {f.label} ({path}): {format_value(path, a.get(path))} -> "
                             f"{format_value(path, value)}. {f.mechanism}")
        else:
            notes.append("B is set up exactly as A.")
        if self.share:
            notes.append("B starts from A's initial weights.")
        for m in MODELS:
            if reasons := not_reproducible(self.runs[m]):
                notes.append(f"Not repeatable: {m.upper()}'s numbers change from run to run ({'; '.join(reasons)}).")
        if any(self.runs[m].numerics.xla == "auto" for m in MODELS):
            notes.append('XLA "auto" compiles only where a GPU is present: a GPU machine gives other numbers.')
        versions = library_versions()
        packages = ["python", "tensorflow", "keras", "tf-keras", "numpy", "scikit-learn"] + (
            ["pandas"] if "pandas" in self.imports else [])
        notes += ["", "Written for " + ", ".join(f"{k} {versions[k]}" for k in packages)
                  + "; other versions (and other CPUs or GPUs) can give other numbers."]
        wrapped = [textwrap.fill(n, 100, subsequent_indent="    " if n.startswith("  -") else "",
                                 break_on_hyphens=False) if n else "" for n in notes]
        return "\n".join([
            '"""A Divergence Lab pair as one plain script: trains model A and model B, then compares them.', "",
            f"    python {SCRIPT_NAME} [--out DIR]     train A and B, each in a fresh process, and compare",
            f"    python {SCRIPT_NAME} --model b       train one model only, in this process", "",
            "Each model writes its final weights (under the app's names, e.g. dense_0/kernel) and its test",
            "predictions to DIR/a.npz and DIR/b.npz.", "", *wrapped, '"""'])


def _slots(run: RunConfig) -> tuple[tuple[str, ...], str]:
    """The optimizer state the raw loop keeps, and what it holds (the names match core/engine_tf.py)."""
    o, kernels = run.optimizer, run.engine.raw_optimizer == "kernels"
    if o.name == "adam":
        return ("m", "v", "vmax")[:3 if o.amsgrad else 2], "first and second moments" + (
            ", and the second's running maximum (AMSGrad)" if o.amsgrad else "")
    if o.name == "sgd":
        return (("m",), "the momentum buffer") if o.momentum > 0 or not kernels else ((), "")
    if o.name == "rmsprop":
        return ("m", "v"), "the momentum and the mean square of the gradients"
    return ("v",), "the sum of squared gradients, from the initial accumulator"


def _update_form(run: RunConfig) -> tuple:
    o = run.optimizer
    return o.name, o.amsgrad, o.momentum > 0, o.nesterov


def _numeric_csv_labels(path: str, target: str) -> bool:
    """Whether core.data reads this CSV's classes as numbers (else as text)."""
    import pandas as pd

    from core.data import read_csv_frame

    labels = read_csv_frame(path)[target].dropna()
    return pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)


def _scaler_kind(run: RunConfig) -> str:
    scaler = run.preprocess.scaler
    return scaler if scaler in ("none",) else ("keras" if scaler == "keras_normalization" else "stats")


def _family(run: RunConfig) -> str:
    return "tensorflow" if run.engine.name == "tensorflow" else "keras"


def _tf_jit_code(run: RunConfig) -> str:
    n = run.numerics
    if n.xla != "auto":
        return f"{n.xla == 'on'}  # XLA {n.xla}"
    if n.op_determinism:
        return 'False  # XLA "auto", but op determinism keeps it off (as in Keras 3)'
    return 'bool(tf.config.list_logical_devices("GPU"))  # XLA "auto": on only with a GPU, as in Keras 3'


def _describe(run: RunConfig) -> str:
    engine = {"keras": "Keras 3 model.fit", "tf_keras": "tf.keras (Keras 2) model.fit",
              "tensorflow": f"raw TensorFlow loop ({run.engine.raw_optimizer} optimizer code)"}[run.engine.name]
    m, t = run.model, run.training
    return (f"{engine}; {m.kind} {'-'.join(map(str, m.hidden))}, {m.activation}; {run.optimizer.name} "
            f"lr {format_value('optimizer.learning_rate', run.optimizer.learning_rate)}; {t.epochs} epochs of batch "
            f"{t.batch_size}, {t.batch_order} order; seeding {run.seeding.policy} {run.seeding.seed}; "
            f"{run.numerics.dtype}, XLA {run.numerics.xla}")


def _template(text: str) -> Lines:
    return text.replace("@INIT_FILE@", INIT_FILE).strip("\n").split("\n")


START_B_FROM_A = """
def start_b_from_a(model_name, out_dir, names, variables):
    \"\"\"B starts from A's initial weights. A saves them as soon as its model is built. B has built its own
    the same way first, as the app does, so that later random draws (dropout, shuffles) match; then it
    waits for A's and assigns them.\"\"\"
    path = os.path.join(out_dir, "@INIT_FILE@")
    if model_name == "a":
        with open(path + ".tmp", "wb") as f:
            np.savez(f, **{name: v.numpy() for name, v in zip(names, variables)})
        os.replace(path + ".tmp", path)  # B never reads a half-written file
        return
    deadline = time.monotonic() + 600
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("A's initial weights never arrived")
        time.sleep(0.05)
    with np.load(path) as initial:
        for name, v in zip(names, variables):
            v.assign(initial[name].astype(v.numpy().dtype))
"""

TRAIN_BOTH = """
def train_both_and_compare(out_dir):
    \"\"\"Train A and B, each in a fresh Python process (TensorFlow reads its settings at import and keeps
    its random state and numerics settings process-wide), then compare their final weights.\"\"\"
    os.makedirs(out_dir, exist_ok=True)
    stale = os.path.join(out_dir, "@INIT_FILE@")  # share
    if os.path.exists(stale):  # share
        os.remove(stale)  # B must wait for this run's A  # share
    script = os.path.abspath(__file__)
    children = {m: subprocess.Popen([sys.executable, script, "--model", m, "--out", out_dir])
                for m in RUNS}
    if children["a"].wait() != 0:  # share
        children["b"].kill()  # it would wait for A's initial weights  # share
    if any([child.wait() != 0 for child in children.values()]):
        print("a training process failed", file=sys.stderr)
        return 1
    same = True
    with np.load(os.path.join(out_dir, "a.npz")) as a, np.load(os.path.join(out_dir, "b.npz")) as b:
        for name in a.files:
            if name not in b.files or a[name].shape != b[name].shape:
                print(f"{name:32} A and B differ in shape")
                same = False
                continue
            bitwise = a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes()
            gap = np.max(np.abs(a[name].astype(np.float64) - b[name].astype(np.float64)), initial=0.0)
            same = same and bitwise
            print(f"{name:32} max |A-B| {gap:.3g}{'  (bitwise equal)' if bitwise else ''}")
    print("A and B are bitwise equal" if same else "A and B differ")
    return 0
"""

MAIN = """
def main():
    parser = argparse.ArgumentParser(description="Train models A and B of a Divergence Lab pair, compare them.")
    parser.add_argument("--model", choices=sorted(RUNS), help="train this model only, in this process")
    parser.add_argument("--out", default=".", help="where a.npz and b.npz go (default: the current directory)")
    args = parser.parse_args()
    if args.model:
        train_one(args.model, args.out)
        return 0
    return train_both_and_compare(args.out)
"""
