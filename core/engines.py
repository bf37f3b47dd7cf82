"""The engine registry: one entry per way of training a model that the app can compare.

An entry says what people call the engine, which framework its worker imports (and
configures through `core.backends`), the environment set before that import, which
module builds and trains the run, which backend-specific factors it honours, what it
needs installed and the command that installs it, and how much memory its worker
holds. The worker, the pool, the factor table, the sidebar and the diagnosis read
this table; adding an engine is one module with a training function plus its entry (names
unique across the engine modules: the exported script carries them side by side).

Nothing here imports a framework.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from dataclasses import dataclass

from core.config import ConfigError, RunConfig
from core.storage import cache_root

# Backend-specific factors: each engine lists those it honours; every other factor applies to all.
BACKEND_FACTORS = ("engine.raw_optimizer", "numerics.xla", "numerics.op_determinism", "numerics.onednn",
                   "numerics.intra_threads", "numerics.inter_threads", "numerics.tf32")
TF_NUMERICS = ("numerics.xla", "numerics.op_determinism", "numerics.onednn", "numerics.intra_threads",
               "numerics.inter_threads", "numerics.tf32")


@dataclass(frozen=True)
class Engine:
    name: str  # the value of engine.name in a RunConfig
    label: str  # what people call it (sidebar, tables)
    training: str  # how a sentence names its training step ("Keras 3's fit on JAX")
    trainer: str  # "module:function" that builds, trains and records one run (the worker and the export call it)
    framework: str  # what its worker imports and configures: tensorflow | jax | torch
    keras: str | None  # the Keras module it builds with: keras | tf_keras | None (no Keras)
    honours: tuple[str, ...]  # the BACKEND_FACTORS it applies
    needs: tuple[str, ...]  # modules that must be importable for it to run
    install: str  # the command that installs what it needs
    worker_mb: int  # one worker's own (anonymous) memory, peak while training, plus margin: bench/worker_memory.py
    same_process: bool = False  # can build two models in one process (the article's Example 1)

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.needs)

    def environment(self, run: RunConfig) -> dict[str, str | None]:
        """Variables its framework reads at import (None: unset), beyond the device."""
        n = run.numerics
        if self.framework == "tensorflow":
            return {"TF_ENABLE_ONEDNN_OPTS": {"on": "1", "off": "0", "default": None}[n.onednn],
                    "TF_USE_LEGACY_KERAS": "1" if self.keras == "tf_keras" else None}
        if self.framework == "jax":
            return {"JAX_PLATFORMS": "cpu" if n.device == "cpu" else None,
                    # XLA's compiled programs kept on disk: a fresh worker loads its training step instead of
                    # compiling it again (seconds of every JAX run; the same program, so the same numbers).
                    "JAX_COMPILATION_CACHE_DIR": str(cache_root() / "jax-compiled"),
                    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
                    # JAX takes 75% of a GPU's memory at its first op unless told not to: A and B (and the
                    # exported script's two processes) share one card, so each allocates as it needs.
                    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                    # off: full float32 matmuls on GPUs that would otherwise use TF32 (JAX's default there)
                    "JAX_DEFAULT_MATMUL_PRECISION": {"default": None, "on": "tensorfloat32", "off": "highest"}[n.tf32],
                    "XLA_FLAGS": "--xla_gpu_deterministic_ops=true" if n.op_determinism else None}
        # Keras's import asks torch whether CUDA is there; torch's default check starts CUDA, and a worker forked
        # from that zygote (core.pool) could then not use the GPU. The NVML check leaves CUDA unstarted.
        return {"PYTORCH_NVML_BASED_CUDA_CHECK": "1",
                # OpenMP's idle threads sleep rather than spin: A and B each run PyTorch's default threads (one per
                # core) side by side, and spinning threads took the cores from each other (a digits pair took 24 s
                # instead of 3 s on 2 cores). It decides how threads wait, not how work is split: the same numbers
                # (tests/test_plain_scripts.py compares with a plain script that does not set it).
                "OMP_WAIT_POLICY": "PASSIVE",
                # PyTorch's deterministic algorithms refuse cuBLAS matmuls on a GPU without a fixed cuBLAS workspace
                "CUBLAS_WORKSPACE_CONFIG": ":4096:8" if n.op_determinism else None}


# The app's own cache of JAX's compiled programs: it saves time and changes no number (tests/test_engines.py),
# so the exported script leaves it out.
APP_ONLY_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                      "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")
FRAMEWORK_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
TF_INSTALL = "pip install tensorflow==2.21.0 keras==3.15.1"
ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("keras", "Keras 3 (keras) on TensorFlow", "Keras 3's fit on TensorFlow", "core.engine_keras:train_keras",
           "tensorflow", "keras", TF_NUMERICS, ("tensorflow", "keras"), TF_INSTALL, 350, same_process=True),
    Engine("tf_keras", "legacy tf.keras (tf_keras, Keras 2)", "legacy tf.keras's fit (the tf_keras package, Keras 2)",
           "core.engine_keras:train_keras", "tensorflow", "tf_keras", TF_NUMERICS, ("tensorflow", "tf_keras"),
           "pip install tensorflow==2.21.0 tf-keras==2.21.0", 350, same_process=True),
    Engine("tensorflow", "raw TensorFlow loop", "the raw TensorFlow GradientTape loop", "core.engine_tf:train_tensorflow",
           "tensorflow", None, ("engine.raw_optimizer",) + TF_NUMERICS, ("tensorflow",), TF_INSTALL, 350),
    Engine("keras_jax", "Keras 3 on JAX", "Keras 3's fit on JAX", "core.engine_keras:train_keras", "jax", "keras",
           ("numerics.xla", "numerics.op_determinism", "numerics.tf32"), ("jax", "keras"),
           "pip install jax==0.10.2 jaxlib==0.10.2 keras==3.15.1", 380),
    Engine("keras_torch", "Keras 3 on PyTorch", "Keras 3's fit on PyTorch", "core.engine_keras:train_keras", "torch", "keras",
           ("numerics.op_determinism", "numerics.intra_threads", "numerics.inter_threads", "numerics.tf32"),
           ("torch", "keras"),
           "pip install torch==2.13.0+cpu --extra-index-url https://download.pytorch.org/whl/cpu", 390),
)}
NAMES = tuple(ENGINES)


def engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError(f"engine.name: unknown engine {name!r}; engines: {', '.join(ENGINES)}") from None


def honouring(path: str) -> tuple[str, ...]:
    """The engines that apply factor `path` (every engine unless it is backend-specific)."""
    if path not in BACKEND_FACTORS:
        return NAMES
    return tuple(e.name for e in ENGINES.values() if path in e.honours)


def unavailable(run: RunConfig) -> str | None:
    """Why this machine cannot train `run`'s engine, with the command that fixes it; None when it can."""
    e = engine(run.engine.name)
    missing = [m for m in e.needs if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return f"{e.label} needs {', '.join(missing)}, which is not installed here: {e.install}"


def gpu_present(devices: str = "/dev/nvidia[0-9]*") -> bool:
    """Whether this machine shows an NVIDIA GPU to the app's workers, without importing a framework (the
    scenarios that need a GPU are listed only then; a run with device 'gpu' still asks its framework)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return bool(glob.glob(devices))


def worker_env(run: RunConfig) -> tuple[tuple[str, str | None], ...]:
    """Environment variables a run's framework reads at import; None means 'unset'. Workers are pooled by this.

    Every engine's variables are listed, unset where they do not apply, so that a worker never
    inherits one meant for another framework.
    """
    e = engine(run.engine.name)
    env = {key: None for other in ENGINES.values() for key in other.environment(run)}
    env.update(e.environment(run))
    env["CUDA_VISIBLE_DEVICES"] = "-1" if run.numerics.device == "cpu" else os.environ.get("CUDA_VISIBLE_DEVICES")
    env["KERAS_BACKEND"] = e.framework
    return tuple(sorted(env.items()))


def worker_mb(env: tuple[tuple[str, str | None], ...]) -> int:
    """The memory a worker started with `env` holds: its framework's figure."""
    framework = dict(env).get("KERAS_BACKEND", "tensorflow")
    return max(e.worker_mb for e in ENGINES.values() if e.framework == framework)
