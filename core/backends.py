"""Per framework (TensorFlow, JAX, PyTorch): import it, configure it before the first op, and
report the settings a run had in effect. Used inside a worker only.

A worker imports exactly one framework: the one its KERAS_BACKEND names (Keras 3 reads the
same variable). A Keras-on-JAX or Keras-on-PyTorch worker never imports TensorFlow.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import platform
import sys
from pathlib import Path

from core.config import RunConfig


FRAMEWORKS = ("tensorflow", "jax", "torch")


class _Hidden(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """These top-level packages fail to import, as if not installed. (find_spec still answers, with no
    origin: torch's import probes packages that way and must not see an error.)"""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden from this process: core.backends)",
                                  name=spec.name)

    def exec_module(self, module):  # never reached: create_module refuses
        raise ModuleNotFoundError(module.__name__)


def import_framework(framework: str):
    """(the framework module, the Keras module the engines build with) for this process's environment.

    The other frameworks are hidden first (importing one raises ModuleNotFoundError, as on a
    machine without it): TensorFlow imports JAX when it is installed (for TFLite, ~110 MB and ~1 s per
    worker, measured), and keras.utils.set_random_seed imports TensorFlow to seed it whenever it is
    installed, whatever the backend; neither changes a number the run computes.
    """
    sys.meta_path.insert(0, _Hidden({other for other in FRAMEWORKS if other != framework}))
    if framework == "tensorflow":
        import tensorflow as fw

        if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
            import tf_keras as K
        else:
            import keras as K
        return fw, K
    if framework == "jax":
        import jax as fw
    else:
        import torch as fw
    import keras as K

    return fw, K


def configure(fw, run: RunConfig) -> None:
    """Settings that must be in place before the framework runs its first op."""
    n = run.numerics
    name = fw.__name__
    # Threads: 0 leaves the framework's own default, what a plain script of it runs with (on 2 cores, both
    # TensorFlow's and PyTorch's split some sums differently with one thread: tests/test_plain_scripts.py).
    if name == "tensorflow":
        if n.intra_threads:
            fw.config.threading.set_intra_op_parallelism_threads(n.intra_threads)
        if n.inter_threads:
            fw.config.threading.set_inter_op_parallelism_threads(n.inter_threads)
        gpus = fw.config.list_physical_devices("GPU")
        for gpu in gpus:  # two workers can then share one card
            fw.config.experimental.set_memory_growth(gpu, True)
        if n.tf32 != "default":
            fw.config.experimental.enable_tensor_float_32_execution(n.tf32 == "on")
        if n.op_determinism:
            fw.config.experimental.enable_op_determinism()
        has_gpu = bool(gpus)
    elif name == "jax":
        # (precision, determinism and the platform are set through the environment, before import)
        has_gpu = fw.default_backend() == "gpu"
    else:
        if n.intra_threads:
            fw.set_num_threads(n.intra_threads)
        if n.inter_threads:
            fw.set_num_interop_threads(n.inter_threads)
        if n.tf32 != "default":
            fw.backends.cuda.matmul.allow_tf32 = fw.backends.cudnn.allow_tf32 = n.tf32 == "on"
        if n.op_determinism:
            fw.use_deterministic_algorithms(True)
        has_gpu = fw.cuda.is_available()
    if n.device == "gpu" and not has_gpu:
        raise RuntimeError(f"numerics.device: 'gpu' was asked for, but {name} sees no GPU on this machine (a "
                           "CPU-only build sees none either: the README's Deploy section says what to install)")


def effective(fw, run: RunConfig) -> dict:
    """The device, precision, determinism and threads this run had in effect, read back from the framework."""
    from core.engines import worker_env  # the variables the parent set for this run

    name = fw.__name__
    if name == "tensorflow":
        from tensorflow.python.framework.config import is_op_determinism_enabled

        gpus = fw.config.list_logical_devices("GPU")
        onednn_env = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        settings = {
            "device": gpus[0].name if gpus else "CPU",
            "gpus_visible": len(gpus),
            "intra_op_threads": _tf_threads(fw.config.threading.get_intra_op_parallelism_threads()),
            "inter_op_threads": _tf_threads(fw.config.threading.get_inter_op_parallelism_threads()),
            "onednn": {"1": "on", "0": "off", None: "TensorFlow default (on for x86 Linux builds)"}[onednn_env],
            "op_determinism": is_op_determinism_enabled(),
            "tf32": fw.config.experimental.tensor_float_32_execution_enabled(),
            # What `tf.keras` is in this TensorFlow: Keras 3 (keras.src) from TF 2.16 unless TF_USE_LEGACY_KERAS=1.
            "tf.keras is": fw.keras.Sequential.__module__,
        }
        build = {k: str(v) for k, v in fw.sysconfig.get_build_info().items()
                 if k in ("is_cuda_build", "cuda_version", "cudnn_version")}
    elif name == "jax":
        device = fw.devices()[0]
        settings = {
            "device": f"{device.platform.upper()}: {device.device_kind}",
            "gpus_visible": sum(d.platform == "gpu" for d in fw.devices()),
            "matmul_precision": str(fw.config.jax_default_matmul_precision or "default"),
            "tf32": fw.config.jax_default_matmul_precision in (None, "default", "tensorfloat32"),
            "op_determinism": "--xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", ""),
        }
        build = {"jax_backend": fw.default_backend()}
    else:
        cuda = fw.cuda.is_available()
        settings = {
            "device": f"cuda: {fw.cuda.get_device_name(0)}" if cuda else "CPU",
            "gpus_visible": fw.cuda.device_count(),
            "intra_op_threads": fw.get_num_threads(),
            "inter_op_threads": fw.get_num_interop_threads(),
            "op_determinism": fw.are_deterministic_algorithms_enabled(),
            "tf32": bool(fw.backends.cuda.matmul.allow_tf32),
        }
        build = {"cuda_version": str(fw.version.cuda)}
    return {**settings, "cpu_count": os.cpu_count(),
            "frameworks imported": [m for m in FRAMEWORKS if m in sys.modules],
            "env": {k: os.environ[k] for k, _ in worker_env(run) if k in os.environ},
            "machine": {**cpu(), "platform": platform.platform(), **build}}


def _tf_threads(count: int) -> int | str:
    """TensorFlow's thread setting as it reads back: 0 is its default, a number it picks for the machine."""
    return count or "0: TensorFlow picks (its default)"


# The instruction sets that decide which CPU kernels oneDNN, Eigen and XLA pick.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
              "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


def cpu() -> dict:
    """CPU model and SIMD flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"cpu": fields.get("model name", fields.get("CPU implementer", "unknown")),
            "simd": [f for f in SIMD_FLAGS if f in flags]}
