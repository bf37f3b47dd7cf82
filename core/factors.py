"""The factor registry: one declaration per thing that can differ between A and B.

Each factor says where it sits in the RunConfig, what values it allows, its label,
its group and a one-sentence mechanism. Validation, the sidebar, URL parameters, the
"what differs" table and the exported script all read this table. The defaults are
the RunConfig dataclass defaults (one place for each fact).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from core.config import (
    ConfigError,
    DataConfig,
    PairConfig,
    RunConfig,
    default_value,
    quoted,
    run_paths,
)
from core.engines import ENGINES, engine, honouring

DATASETS = ("digits", "breast_cancer", "diabetes", "moons", "spirals", "series", "csv")


@dataclass(frozen=True)
class Choice:
    options: tuple
    names: tuple[tuple[Any, str], ...] = ()  # (option, what people read) where the option alone says too little

    def check(self, value: Any, where: str) -> Any:
        if isinstance(value, bool) != all(isinstance(o, bool) for o in self.options) or value not in self.options:
            raise ConfigError(f"{where}: {quoted(value)} is not allowed; choose one of {', '.join(map(repr, self.options))}")
        return value

    def describe(self) -> str:
        return " | ".join(map(str, self.options))


@dataclass(frozen=True)
class Number:
    lo: float
    hi: float
    integer: bool = False
    log: bool = False  # a log-scale quantity such as a learning rate or epsilon (for the UI)
    names: tuple[tuple[Any, str], ...] = ()  # (value, what people read) where the number alone says too little

    def check(self, value: Any, where: str) -> Any:
        ok_type = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            raise ConfigError(f"{where}: expected {'an integer' if self.integer else 'a number'}, got {quoted(value)}")
        if (isinstance(value, float) and not math.isfinite(value)) or not self.lo <= value <= self.hi:
            # (ints compared exactly: math.isfinite(10**400) would overflow)
            raise ConfigError(f"{where}: {quoted(value)} is out of range; allowed {self.describe()}")
        return int(value) if self.integer else float(value)

    def describe(self) -> str:
        return f"{self.lo:g} to {self.hi:g}" + (" (integer)" if self.integer else "")


@dataclass(frozen=True)
class Layers:
    max_layers: int = 6
    max_units: int = 1024

    def check(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
            try:
                value = [int(v) for v in value]
            except ValueError:
                raise ConfigError(f"{where}: expected layer sizes such as '64,32', got {quoted(value)}") from None
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= self.max_layers:
            raise ConfigError(f"{where}: expected 1 to {self.max_layers} hidden layer sizes, got {quoted(value)}")
        for units in value:
            if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= self.max_units:
                raise ConfigError(f"{where}: each layer needs 1 to {self.max_units} units, got {quoted(units)}")
        return tuple(value)

    def describe(self) -> str:
        return f"1 to {self.max_layers} layer sizes of 1 to {self.max_units} units"


@dataclass(frozen=True)
class Text:
    max_len: int = 4096

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or len(value) > self.max_len:
            raise ConfigError(f"{where}: expected text of at most {self.max_len} characters")
        return value

    def describe(self) -> str:
        return "text"


BOOL = Choice((False, True))
SEED = Number(0, 2**31 - 1, integer=True)
THREADS = Number(0, 256, integer=True, names=((0, "framework default"),))
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad")


@dataclass(frozen=True)
class Factor:
    path: str  # "section.field" in RunConfig
    label: str
    group: str
    allowed: Choice | Number | Layers
    mechanism: str  # one sentence: how this factor changes the numbers
    optimizers: tuple[str, ...] = OPTIMIZERS  # optimizers it belongs to (optimizer params)

    @property
    def default(self) -> Any:
        return default_value(self.path)

    @property
    def engines(self) -> tuple[str, ...]:
        """The engines that honour it (core.engines declares the backend-specific ones)."""
        return honouring(self.path)

    def applies(self, run: RunConfig) -> bool:
        return run.engine.name in self.engines and run.optimizer.name in self.optimizers


SEEDING, OPTIM, NUMERICS, PREPROC, ARCH, TRAIN, ENGINE = (
    "Initialisation and PRNGs",
    "Optimizer",
    "Backend and numerics",
    "Data preprocessing",
    "Architecture",
    "Training",
    "Engine",
)
FACTORS: tuple[Factor, ...] = (
    # Engine
    Factor("engine.name", "Engine", ENGINE, Choice(tuple(ENGINES), names=tuple(
        (e.name, e.label) for e in ENGINES.values())),
           "Seeded with keras.utils.set_random_seed, Keras 3 and legacy tf.keras (the tf_keras package, Keras 2; "
           "tf.keras itself is Keras 3 from TensorFlow 2.16 unless TF_USE_LEGACY_KERAS=1) draw the same initial "
           "weights and take the same steps in the same batch order, but fit's own shuffle gives them different "
           "orders from epoch 2; the raw TensorFlow loop draws its initial weights with TensorFlow's random ops; "
           "Keras 3 on JAX or PyTorch draws them from that backend's own random stream and computes with its "
           "kernels."),
    Factor("engine.raw_optimizer", "Raw-loop optimizer code", ENGINE, Choice(("kernels", "textbook")),
           "TensorFlow's fused training kernels (ResourceApplyAdam & co) use the Keras update formula; the "
           "textbook (PyTorch) form bias-corrects m and v separately and puts epsilon elsewhere."),
    # Seeding
    Factor("seeding.policy", "Seeding", SEEDING, Choice(("keras", "numpy_tf", "none", "explicit")),
           "keras.utils.set_random_seed seeds Python, NumPy and TF; NumPy + tf.random.set_seed leaves Keras 3's "
           "initializers drawing from Python's random; explicit seeds only cover initializers and dropout."),
    Factor("seeding.seed", "Seed", SEEDING, SEED,
           "A different seed draws different initial weights, dropout masks and shuffles."),
    # Architecture
    Factor("model.kind", "Network", ARCH, Choice(("mlp", "cnn", "gru")),
           "A different network is a different function with different weights."),
    Factor("model.hidden", "Hidden layers", ARCH, Layers(),
           "Different layer sizes change the number of weights and everything downstream."),
    Factor("model.activation", "Activation", ARCH, Choice(("relu", "tanh", "sigmoid", "elu", "gelu")),
           "A different nonlinearity changes every forward and backward pass."),
    Factor("model.dropout", "Dropout rate", ARCH, Number(0.0, 0.9),
           "Dropout masks are random draws, so they depend on the seeding and on the engine's RNG."),
    Factor("model.batch_norm", "Batch normalization", ARCH, BOOL,
           "Batch statistics make each sample's output depend on its batch mates and on moving averages."),
    Factor("model.initializer", "Kernel initializer", ARCH,
           Choice(("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "random_normal")),
           "Initial weights are drawn from a different distribution."),
    Factor("model.scale_layer", "Custom scale layer", ARCH, BOOL,
           "The custom layer's add_weight(initializer='random_normal') gets no seed of its own, so only the "
           "global seeding decides whether its weights repeat."),
    # Optimizer
    Factor("optimizer.name", "Optimizer", OPTIM, Choice(OPTIMIZERS),
           "Different optimizers follow different update rules."),
    Factor("optimizer.learning_rate", "Learning rate", OPTIM, Number(1e-6, 1e7, log=True),
           "The step size scales every update."),
    Factor("optimizer.beta_1", "beta_1", OPTIM, Number(0.0, 0.9999),
           "The decay of Adam's first-moment (momentum) average.", optimizers=("adam",)),
    Factor("optimizer.beta_2", "beta_2", OPTIM, Number(0.0, 0.99999),
           "The decay of Adam's second-moment average.", optimizers=("adam",)),
    Factor("optimizer.epsilon", "epsilon", OPTIM, Number(1e-12, 1.0, log=True),
           "Epsilon sits in the denominator of every adaptive update; it matters most where gradients are "
           "small (Keras uses 1e-7, PyTorch and TF1 use 1e-8).", optimizers=("adam", "rmsprop", "adagrad")),
    Factor("optimizer.amsgrad", "AMSGrad", OPTIM, BOOL,
           "AMSGrad divides by the running maximum of the second moment instead of its current value.",
           optimizers=("adam",)),
    Factor("optimizer.momentum", "Momentum", OPTIM, Number(0.0, 0.999),
           "Momentum adds a decaying sum of past updates.", optimizers=("sgd", "rmsprop")),
    Factor("optimizer.nesterov", "Nesterov", OPTIM, BOOL,
           "Nesterov momentum evaluates the momentum step one step ahead.", optimizers=("sgd",)),
    Factor("optimizer.rho", "rho", OPTIM, Number(0.0, 0.9999),
           "The decay of RMSprop's squared-gradient average (Keras 0.9, PyTorch's alpha 0.99).",
           optimizers=("rmsprop",)),
    Factor("optimizer.initial_accumulator", "Initial accumulator", OPTIM, Number(0.0, 10.0),
           "Adagrad's accumulator starts here (Keras 0.1, PyTorch 0), which damps the first steps.",
           optimizers=("adagrad",)),
    Factor("optimizer.clipnorm", "clipnorm", OPTIM, Number(0.0, 1e3),
           "Each variable's gradient is rescaled when its norm exceeds this (0 = off)."),
    Factor("optimizer.clipvalue", "clipvalue", OPTIM, Number(0.0, 1e3),
           "Each gradient element is clipped to this magnitude (0 = off)."),
    # Training
    Factor("training.epochs", "Epochs", TRAIN, Number(1, 500, integer=True),
           "More epochs compound every other difference."),
    Factor("training.batch_size", "Batch size", TRAIN, Number(1, 4096, integer=True),
           "The batch size sets how many gradients are averaged per update and how many updates there are."),
    Factor("training.batch_order", "Batch order", TRAIN, Choice(("fixed", "framework", "none")),
           "The order in which samples are seen changes every update after the first; fit's own shuffle "
           "draws from the framework's seeded RNG, the fixed order from NumPy."),
    Factor("training.shuffle_seed", "Shuffle seed", TRAIN, SEED,
           "The fixed batch order is a NumPy permutation per epoch drawn from this seed."),
    # Preprocessing
    Factor("preprocess.scaler", "Scaler", PREPROC,
           Choice(("none", "standard_population", "standard_sample", "minmax", "keras_normalization")),
           "NumPy and scikit-learn divide by the population std (ddof=0), pandas .std() by the sample std "
           "(ddof=1); min-max maps to [0, 1]; Keras Normalization adapts population statistics."),
    Factor("preprocess.fit_on", "Scaler fitted on", PREPROC, Choice(("train", "all")),
           "Fitting the scaler on all data lets the test rows shift the training inputs (leakage)."),
    Factor("preprocess.impute", "Missing values", PREPROC, Choice(("mean", "median", "zero", "drop")),
           "Each fill value gives the blanked cells a different input; 'drop' trains on fewer rows (test rows "
           "are filled with the training mean so that A and B are scored on the same samples)."),
    Factor("preprocess.input_dtype", "Preprocessing dtype", PREPROC, Choice(("float32", "float64")),
           "Scaling computed in float64 and cast by Keras rounds differently from scaling computed in float32."),
    # Numerics
    Factor("numerics.dtype", "Compute dtype", NUMERICS, Choice(("float32", "float64", "mixed_float16")),
           "Every operation rounds to the precision of its dtype; mixed_float16 computes in half precision."),
    Factor("numerics.xla", "XLA (jit_compile)", NUMERICS, Choice(("auto", "on", "off")),
           "XLA fuses operations and reorders arithmetic; Keras 3's 'auto' turns it on with TensorFlow only when a "
           "GPU is present, and always with JAX."),
    Factor("numerics.op_determinism", "Op determinism", NUMERICS, BOOL,
           "Deterministic kernels (TensorFlow's enable_op_determinism, XLA's deterministic GPU ops on JAX, "
           "torch.use_deterministic_algorithms) are mostly a GPU matter; on TensorFlow it also turns Keras 3's auto "
           "XLA off."),
    Factor("numerics.onednn", "oneDNN", NUMERICS, Choice(("default", "on", "off")),
           "oneDNN CPU kernels block and vectorise matmuls differently from Eigen's."),
    Factor("numerics.intra_threads", "Intra-op threads", NUMERICS, THREADS,
           "Splitting one op across a different number of threads can change the order of its sums; 0 leaves the "
           "framework's own default, which is what a plain script runs with."),
    Factor("numerics.inter_threads", "Inter-op threads", NUMERICS, THREADS,
           "How many ops run at once; it affects speed, and ordering only for racy ops."),
    Factor("numerics.device", "Device", NUMERICS, Choice(("auto", "cpu", "gpu")),
           "GPU kernels (cuBLAS, cuDNN) sum in a different order from CPU kernels."),
    Factor("numerics.tf32", "TF32 matmuls", NUMERICS, Choice(("default", "on", "off")),
           "On Ampere and newer GPUs TF32 rounds float32 matmul inputs to 10 mantissa bits (no effect on CPU). "
           "'default' leaves each framework's own choice: on in TensorFlow, JAX's default matmul precision, off for "
           "PyTorch's matmuls; off means JAX_DEFAULT_MATMUL_PRECISION=highest on JAX and allow_tf32=False on "
           "PyTorch."),
)

BY_PATH: dict[str, Factor] = {f.path: f for f in FACTORS}
assert sorted(BY_PATH) == sorted(run_paths()), "every RunConfig field needs exactly one factor"

DATA_RULES: dict[str, Choice | Number | Text] = {
    "dataset": Choice(DATASETS),
    "n_samples": Number(20, 20000, integer=True),
    "data_seed": SEED,
    "noise": Number(0.0, 2.0),
    "missing_rate": Number(0.0, 0.9),
    "missing_seed": SEED,
    "test_fraction": Number(0.05, 0.9),
    "split_seed": SEED,
    "window": Number(2, 200, integer=True),
    "csv_path": Text(),
    "csv_target": Text(),
}
assert sorted(DATA_RULES) == sorted(f.name for f in dataclasses.fields(DataConfig))


def factor(path: str) -> Factor:
    try:
        return BY_PATH[path]
    except KeyError:
        raise ConfigError(f"unknown factor {path!r}; known factors: {', '.join(BY_PATH)}") from None


def _section(raw: Any, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object, got {type(raw).__name__}")
    return raw


def parse_run(raw: Any, base: RunConfig | None = None) -> RunConfig:
    """A RunConfig from a (possibly partial) nested dict; missing fields keep `base`'s values."""
    run = base or RunConfig()
    raw = _section(raw, "run")
    sections = {f.name for f in dataclasses.fields(RunConfig)}
    for name, values in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown section {name!r}; known sections: {', '.join(sorted(sections))}")
        for key, value in _section(values, name).items():
            run = run.with_value(f"{name}.{key}", factor(f"{name}.{key}").allowed.check(value, f"{name}.{key}"))
    return check_run(run)


def check_run(run: RunConfig) -> RunConfig:
    """Rules that span fields."""
    if run.model.kind != "mlp" and run.engine.name == "tensorflow":
        raise ConfigError("model.kind: the tensorflow engine implements dense networks (mlp) only")
    if run.seeding.policy == "numpy_tf" and engine(run.engine.name).framework != "tensorflow":
        raise ConfigError(f"seeding.policy: numpy_tf calls tf.random.set_seed, and the {run.engine.name} engine "
                          "runs without TensorFlow; choose keras, explicit or none")
    if run.optimizer.clipnorm and run.optimizer.clipvalue:
        raise ConfigError("optimizer.clipvalue: Keras takes clipnorm or clipvalue, not both; set one of them to 0")
    return run


def parse_data(raw: Any) -> DataConfig:
    raw = _section(raw, "data")
    values = {}
    for key, value in raw.items():
        if key not in DATA_RULES:
            raise ConfigError(f"unknown data field {key!r}; known: {', '.join(DATA_RULES)}")
        values[key] = DATA_RULES[key].check(value, f"data.{key}")
    data = DataConfig(**values)
    if data.dataset == "csv" and not (data.csv_path and data.csv_target):
        raise ConfigError("data: the csv dataset needs csv_path and csv_target")
    return data


# What one process sets for every model it builds: two models of one process cannot differ in these.
PROCESS_WIDE = (ENGINE, SEEDING, NUMERICS)


def make_pair(data: DataConfig, a: RunConfig, b_differs: dict[str, Any], b_starts_from_a_init: bool = False,
              same_process: bool = False) -> PairConfig:
    """The canonical pair: overrides validated, sorted, and dropped where equal to A's value."""
    differs = []
    for path, value in b_differs.items():
        value = factor(path).allowed.check(value, f"b_differs.{path}")
        if value != a.get(path):
            differs.append((path, value))
    pair = PairConfig(data=data, a=check_run(a), b_differs=tuple(sorted(differs)),
                      b_starts_from_a_init=bool(b_starts_from_a_init), same_process=bool(same_process))
    check_run(pair.b)
    if pair.same_process:
        if not engine(pair.a.engine.name).same_process:
            raise ConfigError(f"same_process: two models in one process are built with keras and tf.keras; the "
                              f"{pair.a.engine.name} engine trains one model per process")
        if pair.b_starts_from_a_init:
            raise ConfigError("same_process: B is built next in A's process and draws its own weights; it cannot "
                              "also copy A's")
        wide = [p for p, _ in pair.b_differs if factor(p).group in PROCESS_WIDE]
        if wide:
            raise ConfigError(f"same_process: one process has one engine, seeding and numerics for both models, "
                              f"but B differs in {', '.join(wide)}")
    if pair.b_starts_from_a_init:
        shape_paths = {"model.kind", "model.hidden", "model.batch_norm", "model.scale_layer"}
        clash = shape_paths & {p for p, _ in pair.b_differs}
        if clash:
            raise ConfigError(f"b_starts_from_a_init: A and B must have the same weight shapes, but B differs in "
                              f"{', '.join(sorted(clash))}")
    check_data_fits(pair)
    return pair


def check_data_fits(pair: PairConfig) -> None:
    for run in (pair.a, pair.b):
        if run.model.kind == "cnn" and pair.data.dataset != "digits":
            raise ConfigError("model.kind: the cnn reads 8x8 images and needs the digits dataset")
        if run.model.kind == "gru" and pair.data.dataset != "series":
            raise ConfigError("model.kind: the gru reads windows of a series and needs the series dataset")


def parse_pair(raw: Any) -> PairConfig:
    """A validated PairConfig from its JSON dict; every error names the field and what is allowed."""
    raw = _section(raw, "pair")
    unknown = set(raw) - {"data", "a", "b_differs", "b_starts_from_a_init", "same_process"}
    if unknown:
        raise ConfigError(f"unknown pair field(s) {', '.join(sorted(unknown))}")
    flags = {name: BOOL.check(raw.get(name, False), name) for name in ("b_starts_from_a_init", "same_process")}
    return make_pair(parse_data(raw.get("data")), parse_run(raw.get("a")), _section(raw.get("b_differs"), "b_differs"),
                     **flags)


def not_applied(run: RunConfig) -> dict[str, str]:
    """Factors set away from their default that this run's engine or optimizer ignores, with the reason."""
    out = {}
    for f in FACTORS:
        if run.get(f.path) == f.default:
            continue
        if run.engine.name not in f.engines:
            out[f.path] = f"the {run.engine.name} engine does not use it"
        elif run.optimizer.name not in f.optimizers:
            out[f.path] = f"{run.optimizer.name} does not use it"
    if run.engine.name == "tensorflow" and run.numerics.dtype == "mixed_float16":
        out["numerics.dtype"] = "the tensorflow engine has no loss scaling; mixed_float16 runs as float32"
    return out


def format_value(path: str, value: Any) -> str:
    """A value as people read it: 0.001 stays 0.001, an epsilon shows as 1e-07."""
    allowed = factor(path).allowed
    if isinstance(allowed, (Choice, Number)) and value in dict(allowed.names):
        return dict(allowed.names)[value]
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(allowed, Number) and not allowed.integer:
        return f"{value:.4g}" if not allowed.log or value >= 1e-4 else f"{value:.0e}"
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)
