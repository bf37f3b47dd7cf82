"""What one training run and one A/B pair are made of.

Frozen dataclasses hold the defaults (with a short comment on each field); the
allowed values, labels and mechanisms live in `core.factors`, which is the one
place that validates. Everything here is plain Python: no TensorFlow, no NumPy.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    """The data, shared by A and B: the same samples and the same split."""

    dataset: str = "digits"  # digits | breast_cancer | diabetes | moons | spirals | series | csv
    n_samples: int = 600  # generated datasets (moons, spirals, series) only
    data_seed: int = 0  # generated datasets only: which samples are drawn
    noise: float = 0.2  # generated datasets only: label/feature noise
    missing_rate: float = 0.0  # fraction of input cells blanked to NaN before the split
    missing_seed: int = 0  # which cells get blanked
    test_fraction: float = 0.2  # share of samples held out for the test split
    split_seed: int = 0  # which samples are held out
    window: int = 24  # series only: past values per forecasting window
    csv_path: str = ""  # csv only: file to read
    csv_target: str = ""  # csv only: the column to predict


@dataclass(frozen=True)
class PreprocessConfig:
    scaler: str = "standard_population"  # none | standard_population | standard_sample | minmax | keras_normalization
    fit_on: str = "train"  # train | all (all = leakage: test rows shape the scaler)
    impute: str = "mean"  # mean | median | zero | drop (only matters when data has NaNs)
    input_dtype: str = "float32"  # dtype the preprocessing is computed in and handed to the model


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "mlp"  # mlp | cnn (digits) | gru (series)
    hidden: tuple[int, ...] = (64, 32)  # units of each hidden dense layer
    activation: str = "relu"
    dropout: float = 0.0  # after each hidden layer; 0 = none
    batch_norm: bool = False  # BatchNormalization after each hidden dense layer
    initializer: str = "glorot_uniform"  # kernel initializer of every dense layer
    scale_layer: bool = False  # custom layer: inputs * w, w from add_weight(initializer="random_normal")


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"  # adam | sgd | rmsprop | adagrad
    learning_rate: float = 0.001
    beta_1: float = 0.9  # adam
    beta_2: float = 0.999  # adam
    epsilon: float = 1e-7  # adam, rmsprop, adagrad (Keras default; PyTorch/TF1 use 1e-8)
    amsgrad: bool = False  # adam
    momentum: float = 0.0  # sgd, rmsprop
    nesterov: bool = False  # sgd
    rho: float = 0.9  # rmsprop
    initial_accumulator: float = 0.1  # adagrad (Keras default; PyTorch uses 0)
    clipnorm: float = 0.0  # per-variable gradient norm clip; 0 = off
    clipvalue: float = 0.0  # elementwise gradient clip; 0 = off


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 20
    batch_size: int = 32
    batch_order: str = "fixed"  # fixed (NumPy permutation per epoch) | framework (fit's own shuffle) | none
    shuffle_seed: int = 0  # seeds the fixed order


@dataclass(frozen=True)
class SeedingConfig:
    policy: str = "keras"  # keras (keras.utils.set_random_seed) | numpy_tf | none | explicit
    seed: int = 0


@dataclass(frozen=True)
class EngineConfig:
    name: str = "keras"  # keras (Keras 3) | tf_keras (legacy Keras 2) | tensorflow (raw GradientTape loop)
    raw_optimizer: str = "kernels"  # tensorflow engine: kernels (ResourceApplyAdam & co) | textbook (PyTorch form in TF ops)


@dataclass(frozen=True)
class NumericsConfig:
    dtype: str = "float32"  # float32 | float64 | mixed_float16
    xla: str = "auto"  # auto (Keras 3: on only with a GPU) | on | off
    op_determinism: bool = False  # tf.config.experimental.enable_op_determinism()
    onednn: str = "default"  # default | on | off  (TF_ENABLE_ONEDNN_OPTS, read at import)
    intra_threads: int = 0  # threads that one op may use; 0 = the framework's default, as in a plain script
    inter_threads: int = 0  # ops that may run at once; 0 = the framework's default
    device: str = "auto"  # auto | cpu | gpu
    tf32: str = "default"  # TensorFloat-32 matmuls on Ampere+ GPUs: default (the framework's own) | on | off


@dataclass(frozen=True)
class RunConfig:
    """Everything one model's training depends on, apart from the shared data."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    seeding: SeedingConfig = field(default_factory=SeedingConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)

    def get(self, path: str) -> Any:
        section, name = path.split(".")
        return getattr(getattr(self, section), name)

    def with_value(self, path: str, value: Any) -> RunConfig:
        section, name = path.split(".")
        return replace(self, **{section: replace(getattr(self, section), **{name: value})})


@dataclass(frozen=True)
class PairConfig:
    """A, and the factors in which B differs from A (nothing else differs)."""

    data: DataConfig = field(default_factory=DataConfig)
    a: RunConfig = field(default_factory=RunConfig)
    b_differs: tuple[tuple[str, Any], ...] = ()  # (factor path, B's value), sorted, none equal to A's
    b_starts_from_a_init: bool = False  # B copies A's initial weights instead of drawing its own
    same_process: bool = False  # A and B built one after the other in one fresh process, as in a notebook

    @property
    def b(self) -> RunConfig:
        run = self.a
        for path, value in self.b_differs:
            run = run.with_value(path, value)
        return run

    def to_dict(self) -> dict:
        return {
            "data": dataclasses.asdict(self.data),
            "a": run_to_dict(self.a),
            "b_differs": {path: _jsonable(value) for path, value in self.b_differs},
            "b_starts_from_a_init": self.b_starts_from_a_init,
            **({"same_process": True} if self.same_process else {}),  # links and results from before stay valid
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def pair_from_dict(raw: dict) -> PairConfig:
    """The PairConfig that `to_dict` wrote, as it was (core.factors.parse_pair validates a dict from outside)."""
    a = run_from_dict(raw["a"])
    differs = tuple(sorted((path, _tupled(value)) for path, value in raw["b_differs"].items()))
    return PairConfig(DataConfig(**raw["data"]), a, differs, raw["b_starts_from_a_init"],
                      raw.get("same_process", False))


def run_from_dict(raw: dict) -> RunConfig:
    defaults = RunConfig()
    return RunConfig(**{section: type(getattr(defaults, section))(**{k: _tupled(v) for k, v in values.items()})
                        for section, values in raw.items()})


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def run_to_dict(run: RunConfig) -> dict:
    return {f.name: {k: _jsonable(v) for k, v in dataclasses.asdict(getattr(run, f.name)).items()} for f in fields(run)}


def run_paths() -> list[str]:
    """Every 'section.field' of a RunConfig, in declaration order."""
    return [f"{s.name}.{f.name}" for s in fields(RunConfig) for f in fields(s.default_factory())]


def default_value(path: str) -> Any:
    return RunConfig().get(path)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class ConfigError(ValueError):
    """A config value is out of range; the message names the field and what is allowed."""


def shorten(text: str, limit: int) -> str:
    """Text from outside (a link, a file) cut to `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def quoted(value: Any, limit: int = 60) -> str:
    """A value from outside as an error message quotes it: repr, and short."""
    return shorten(repr(value), limit)
