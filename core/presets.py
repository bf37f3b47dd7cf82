"""Scenarios, one per source of divergence: a pair config and a one-line description.

The description says what is set up, never how big the effect is (the runs measure that).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import ConfigError, DataConfig, PairConfig
from core.engines import gpu_present
from core.factors import make_pair, parse_run


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    a: dict  # A's settings that differ from the RunConfig defaults (nested dict)
    b_differs: dict  # factor path -> B's value
    b_starts_from_a_init: bool = False
    data: dict | None = None  # DataConfig fields that differ from the defaults
    same_process: bool = False  # A and B built one after the other in one fresh process
    needs_gpu: bool = False  # listed only where a GPU is present (core.engines.gpu_present)

    def pair(self, epochs: int | None = None) -> PairConfig:
        a = parse_run(self.a)
        if epochs is not None:
            a = parse_run({"training": {"epochs": epochs}}, a)
        return make_pair(DataConfig(**(self.data or {})), a, self.b_differs, self.b_starts_from_a_init,
                         self.same_process)


ALL_PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("keras3-vs-tf-keras", "Same seed, same network, fit's own shuffle: Keras 3 against legacy tf.keras "
           "(Keras 2, the tf_keras package; tf.keras itself is Keras 3 from TensorFlow 2.16 unless "
           "TF_USE_LEGACY_KERAS=1).", {"training": {"batch_order": "framework"}}, {"engine.name": "tf_keras"}),
    Preset("two-models-one-process", "The article's Example 1: np.random.seed(42) and tf.random.set_seed(42), "
           "then keras.Sequential (A) and tf.keras.Sequential (B) built one after the other in one process.",
           {"seeding": {"policy": "numpy_tf", "seed": 42}}, {}, same_process=True),
    Preset("tf-seed-not-enough", "A and B identical, seeded only with np.random.seed + tf.random.set_seed, "
           "each in a fresh process.", {"seeding": {"policy": "numpy_tf"}}, {}),
    Preset("adam-epsilon", "Adam's epsilon: Keras's 1e-7 against PyTorch/TF1's 1e-8, from the same initial weights.",
           {}, {"optimizer.epsilon": 1e-8}, b_starts_from_a_init=True),
    Preset("fit-vs-raw-loop", "Keras model.fit against a raw TensorFlow GradientTape loop with TF's Adam kernel, "
           "from the same initial weights and batch order.", {}, {"engine.name": "tensorflow"},
           b_starts_from_a_init=True),
    Preset("population-vs-sample-std", "Standardisation with the population std (NumPy, scikit-learn) against the "
           "sample std (pandas .std()).", {"preprocess": {"scaler": "standard_population"}},
           {"preprocess.scaler": "standard_sample"}, b_starts_from_a_init=True),
    Preset("mean-vs-median-impute", "10% of the inputs missing: filled with the column mean against the median.",
           {}, {"preprocess.impute": "median"}, b_starts_from_a_init=True, data={"missing_rate": 0.1}),
    Preset("float32-vs-float64", "The same training in float32 and in float64, from the same initial weights.",
           {}, {"numerics.dtype": "float64"}, b_starts_from_a_init=True),
    Preset("xla-on-off", "jit_compile off against on (XLA), from the same initial weights.",
           {"numerics": {"xla": "off"}}, {"numerics.xla": "on"}, b_starts_from_a_init=True),
    Preset("batch-order", "The fixed NumPy batch order against fit's own shuffle.", {},
           {"training.batch_order": "framework"}, b_starts_from_a_init=True),
    Preset("onednn-on-off", "oneDNN CPU kernels on against off (TF_ENABLE_ONEDNN_OPTS), from the same initial "
           "weights.", {"numerics": {"onednn": "on"}}, {"numerics.onednn": "off"}, b_starts_from_a_init=True),
    Preset("same-seed-two-backends", "keras.utils.set_random_seed(0) and the same Keras 3 code on TensorFlow (A) "
           "and on JAX (B), the same fixed batch order.", {}, {"engine.name": "keras_jax"}),
    Preset("two-backends-aligned", "Keras 3 on TensorFlow (A) and on PyTorch (B), B from A's initial weights, the "
           "same fixed batch order.", {}, {"engine.name": "keras_torch"}, b_starts_from_a_init=True),
    # Both GPU scenarios turn on XLA's deterministic GPU ops: without them A trained again in another process
    # could already differ from A on a GPU (README, GPU workstation).
    Preset("tf32-vs-float32", "Keras 3 on JAX on the GPU: float32 matmuls as JAX does them by default there (TF32 "
           "on recent NVIDIA GPUs) against full float32 (JAX_DEFAULT_MATMUL_PRECISION=highest), from the same "
           "initial weights, deterministic GPU ops on both.",
           {"engine": {"name": "keras_jax"}, "numerics": {"device": "gpu", "op_determinism": True}},
           {"numerics.tf32": "off"}, b_starts_from_a_init=True, needs_gpu=True),
    Preset("gpu-vs-cpu", "Keras 3 on JAX on the GPU (A) against the CPU (B), full float32 matmuls and deterministic "
           "ops on both, from the same initial weights.",
           {"engine": {"name": "keras_jax"}, "numerics": {"device": "gpu", "tf32": "off", "op_determinism": True}},
           {"numerics.device": "cpu"}, b_starts_from_a_init=True, needs_gpu=True),
    Preset("run-it-twice", "The default setup trained twice, each in a fresh process.", {}, {}),
    Preset("custom-layer", "A and B identical with explicit seeds on every built-in initializer; the custom "
           "scale layer's add_weight(initializer='random_normal') has none.",
           {"seeding": {"policy": "explicit"}, "model": {"scale_layer": True}}, {}),
)}

# The scenarios this machine can run: those that need a GPU only where one is present.
PRESETS: dict[str, Preset] = {name: p for name, p in ALL_PRESETS.items() if not p.needs_gpu or gpu_present()}
DEFAULT_PRESET = "adam-epsilon"


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None


def default_pair() -> PairConfig:
    return preset(DEFAULT_PRESET).pair()

