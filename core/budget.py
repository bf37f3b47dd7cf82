"""What one run may cost, checked before it starts (no TensorFlow here).

A link or a pair.json can ask for any config the registry allows: 6 x 1024 hidden
units for 500 epochs, or 20,000 samples at batch size 1. Before a run starts the
parent refuses one that would train too long, saying what to change; and a run whose
snapshots (weights and test predictions after every epoch) would outgrow
RECORD_BUDGET_MB records every k-th epoch instead (always the initialisation and the
last epoch), which the pages say. The worker applies the same rule to the sizes it
really holds.
"""

from __future__ import annotations

import math
import os

from core import machine
from core.config import ConfigError, RunConfig

# Weights + test predictions a run keeps (in the worker, the app and the cache); a small
# container can lower it with DIVERGENCE_LAB_RECORD_MB (workers inherit the environment).
RECORD_BUDGET_MB = float(os.environ.get("DIVERGENCE_LAB_RECORD_MB", "48"))
MAX_STEPS = 200_000  # optimizer steps per run: batches per epoch x epochs
# Weights x training rows x epochs per run: the largest network (6 x 1024) on digits for 26 epochs; measured 322-331 s
# of training per run on this 2-core machine with tests running beside it (the per-run timeout is 900 s).
MAX_WORK = 2e11

# A worker's memory grows with the network: measured peak RSS 760 MB with 6,570 weights and 1,012 MB with
# 5,324,810 (digits, Adam, 2 epochs): ~47 bytes per weight (variables, optimizer slots, gradients, snapshots).
BYTES_PER_WEIGHT = 48

# Weights of the fixed front ends (engine_keras.build_model): features they hand to the dense layers.
CNN_WEIGHTS, CNN_FEATURES = 3 * 3 * 1 * 8 + 8, 3 * 3 * 8  # Conv2D(8, 3) on 8x8, then 2x2 max pooling
GRU_UNITS = 16
GRU_WEIGHTS = 3 * GRU_UNITS * (1 + GRU_UNITS + 2)  # kernel, recurrent kernel, two biases (reset_after)


def parameter_count(run: RunConfig, n_features: int, n_outputs: int) -> int:
    """Every variable the engines record (trainable or not), as they build the network."""
    m = run.model
    total = n_features if m.scale_layer else 0
    width = n_features
    if m.kind == "cnn":
        total, width = total + CNN_WEIGHTS, CNN_FEATURES
    elif m.kind == "gru":
        total, width = total + GRU_WEIGHTS, GRU_UNITS
    for units in m.hidden:
        total += width * units + units + (4 * units if m.batch_norm else 0)  # BN: gamma, beta, moving mean, var
        width = units
    return total + width * n_outputs + n_outputs


def snapshot_every(snapshot_bytes: int, epochs: int) -> int:
    """k: record the initialisation, every k-th epoch and the last, within RECORD_BUDGET_MB."""
    budget = RECORD_BUDGET_MB * 2**20
    if 2 * snapshot_bytes > budget:
        raise ConfigError(f"model.hidden: one snapshot of the weights and test predictions takes "
                          f"{snapshot_bytes / 2**20:.3g} MB and a run keeps at most {RECORD_BUDGET_MB:g} MB: "
                          "use fewer or smaller hidden layers")
    k = 1
    while len(recorded_epochs(epochs, k)) * snapshot_bytes > budget:
        k += 1
    return k


def recorded_epochs(epochs: int, every: int) -> list[int]:
    """The epochs a run records (0 = initialisation)."""
    return sorted({*range(0, epochs + 1, every), epochs})


def worker_headroom_mb(workers: int, worker_mb: int) -> float:
    """Memory one of `workers` side-by-side workers may use beyond its engine's own share (`worker_mb`)."""
    return machine.memory_for_workers_mb() / workers - worker_mb


def check(run: RunConfig, ds, headroom_mb: float | None = None) -> int:
    """Refuse a run that would train too long, or outgrow `headroom_mb` of memory beyond a worker's own
    (ConfigError says what to change); return its snapshot interval."""
    n_train, n_test = len(ds.x_train), len(ds.x_test)
    n_outputs = ds.n_classes if ds.task == "classification" else 1
    t = run.training
    steps = math.ceil(n_train / t.batch_size) * t.epochs
    if steps > MAX_STEPS:
        raise ConfigError(f"training.batch_size: {steps:,} optimizer steps ({n_train:,} training rows in batches of "
                          f"{t.batch_size} for {t.epochs} epochs); a run may take at most {MAX_STEPS:,}: raise the "
                          "batch size, or lower the epochs or the samples")
    params = parameter_count(run, ds.x_train.shape[1], n_outputs)
    work = params * n_train * t.epochs
    if work > MAX_WORK:
        raise ConfigError(f"training.epochs: {params:,} weights trained on {n_train:,} rows for {t.epochs} epochs "
                          f"({work:.2g} weight-row updates); a run may do at most {MAX_WORK:.0g}: lower the epochs, "
                          "or use fewer or smaller hidden layers")
    if headroom_mb is not None and params * BYTES_PER_WEIGHT > headroom_mb * 2**20:
        fits = max(int(headroom_mb * 2**20 / BYTES_PER_WEIGHT), 0)
        raise ConfigError(f"model.hidden: {params:,} weights need about {params * BYTES_PER_WEIGHT / 2**20:,.0f} MB "
                          f"in a worker beyond its own, and this server leaves a worker {max(headroom_mb, 0):,.0f} MB "
                          f"(networks up to about {fits:,} weights): use fewer or smaller hidden layers")
    itemsize = 8 if run.numerics.dtype == "float64" else 4
    return snapshot_every(params * itemsize + n_test * n_outputs * 8, t.epochs)
