"""A worker without a framework, for the tests of what surrounds training (pool, cache, batches, pages).

It is `core.worker` itself (the same frames, life cycle, parent watch, error messages, peer
weights) with two functions replaced: the framework import is NumPy's (milliseconds instead of
seconds), and a run trains a dense network in NumPy, in float32 as the engines do by default: the
run's hidden layers and activation (relu or tanh; others as relu), Glorot-uniform kernels from the
run's seed, textbook Adam (or plain SGD for the other optimizers) with the run's learning rate,
betas and epsilon, the run's batch size and fixed batch order (other orders: none), the same
canonical variable names and Recording as the engines. So a run is a pure function of its config
and data (bitwise repeatable), changing a factor changes the numbers, and a learning rate far too
large overflows to a non-finite loss (tests/test_standin.py). What the frameworks themselves do
(dtype policies, seeding, kernels) is tested with real workers elsewhere; the pool runs this file
when `core.pool.WORKER_COMMAND` points at it (conftest's `standin_workers`) or a pool is given its
command (`standin_pool`).

    python tests/standin_worker.py [EPOCH_S]   EPOCH_S: seconds each epoch waits (tests that stop a run midway)
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

from core import worker
from core.preprocess import preprocess
from core.recording import Recording, fixed_orders

EPOCH_WAIT = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
ACTIVATIONS = {"relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
               "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2)}


def import_numpy():
    return np, None, 0.0


def run_job(fw, K, job: dict, emit, receive) -> dict:
    run, ds = job["run"], job["data"]
    started = time.perf_counter()
    inputs = preprocess(ds, run.preprocess, None)
    digest = worker.inputs_digest(*inputs[:2])  # of what preprocessing handed over, as the real worker's
    x_train, y_train, x_test, grid = (a if a is None or a.dtype.kind != "f" else a.astype(np.float32) for a in inputs)
    classify = ds.task == "classification"
    rng = np.random.default_rng(run.seeding.seed)
    sizes = [x_train.shape[1], *run.model.hidden, ds.n_classes if classify else 1]
    names = [f"{layer}/{part}" for layer in [f"dense_{i}" for i in range(len(run.model.hidden))] + ["output"]
             for part in ("kernel", "bias")]
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params += [rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32), np.zeros(fan_out, np.float32)]
    if job.get("init_from_peer"):
        message = receive()
        if message is None or message.get("type") != "init_weights":
            raise RuntimeError("the peer's initial weights never arrived")
        params = [np.array(message["weights"][n], dtype=np.float32) for n in names]
    act, act_grad = ACTIVATIONS.get(run.model.activation, ACTIVATIONS["relu"])

    def forward(x):
        inputs, pre = [x], []
        for i in range(0, len(params) - 2, 2):
            pre.append(inputs[-1] @ params[i] + params[i + 1])
            inputs.append(act(pre[-1]))
        out = inputs[-1] @ params[-2] + params[-1]
        if classify:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        return out, inputs, pre

    def step(x, y, t, moments):
        with np.errstate(all="ignore"):
            out, inputs, pre = forward(x)
            if classify:
                loss = -np.mean(np.log(np.clip(out[np.arange(len(y)), y], 1e-12, None)))
                delta = out.copy()
                delta[np.arange(len(y)), y] -= 1
                hits = float(np.sum(out.argmax(axis=1) == y))
            else:
                err = out[:, 0] - y
                loss, delta, hits = np.mean(err ** 2), 2 * err[:, None], float(np.sum(np.abs(err)))
            delta /= len(x)
            grads = []
            for layer in range(len(params) // 2 - 1, -1, -1):
                grads[:0] = [inputs[layer].T @ delta, delta.sum(axis=0)]
                if layer:
                    delta = (delta @ params[2 * layer].T) * act_grad(pre[layer - 1])
            o = run.optimizer
            for i, g in enumerate(grads):
                if o.name == "adam":
                    m, v = moments[i]
                    m[:] = o.beta_1 * m + (1 - o.beta_1) * g
                    v[:] = o.beta_2 * v + (1 - o.beta_2) * g * g
                    params[i] -= o.learning_rate * (m / (1 - o.beta_1 ** t)) / (
                        np.sqrt(v / (1 - o.beta_2 ** t)) + o.epsilon)
                else:
                    params[i] -= o.learning_rate * g
        return loss, hits

    def predict(x):
        with np.errstate(all="ignore"):
            return forward(x)[0]

    rec = Recording(names, emit, ds.y_test, ds.task, run.training.epochs)
    rec.initial(params, predict(x_test))
    tr, n = run.training, len(x_train)
    orders = fixed_orders(n, tr.epochs, tr.shuffle_seed) if tr.batch_order == "fixed" else None
    moments, t = [(np.zeros_like(p), np.zeros_like(p)) for p in params], 0
    for epoch in range(tr.epochs):
        time.sleep(EPOCH_WAIT)
        order = orders[epoch] if orders is not None else np.arange(n)
        loss_sum = hit_sum = 0.0
        for start in range(0, n, tr.batch_size):
            idx, t = order[start:start + tr.batch_size], t + 1
            loss, hits = step(x_train[idx], y_train[idx], t, moments)
            loss_sum, hit_sum = loss_sum + loss * len(idx), hit_sum + hits
        if not rec.epoch_end(loss_sum / n, hit_sum / n, params, predict(x_test)):
            break
    return {"history": rec.history, "diverged_epoch": rec.diverged_epoch, "weights": rec.weight_arrays(),
            "predictions": rec.prediction_array(), "recorded_epochs": rec.epochs,
            "grid_predictions": None if grid is None else predict(grid), "n_train_rows": n,
            "train_inputs_digest": digest, "test_inputs": np.asarray(x_test),
            "effective": {"device": "CPU", "env": {}, "seeding": f"NumPy generator seeded with {run.seeding.seed}",
                          "optimizer": {"name": run.optimizer.name, "learning_rate": run.optimizer.learning_rate,
                                        "epsilon": run.optimizer.epsilon}},
            "versions": {"numpy": np.__version__, "python": sys.version.split()[0]},
            "timings": {"import_s": job["import_s"], "build_s": rec.initialised_at - started,
                        "train_s": time.perf_counter() - rec.initialised_at},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    worker.import_framework_timed, worker.run_job = import_numpy, run_job
    worker.main()
