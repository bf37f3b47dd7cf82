"""A pristine training process: `python -m core.worker`, used for exactly one run.

The parent sets the run's environment (KERAS_BACKEND, TF_USE_LEGACY_KERAS,
TF_ENABLE_ONEDNN_OPTS, JAX_DEFAULT_MATMUL_PRECISION, CUDA_VISIBLE_DEVICES, ...; see
core.engines) before this process starts, so the framework reads it at import. The
worker imports its one framework ahead of need (core.backends), says "ready", then
waits for one job on stdin. Thread counts, determinism and TF32 are applied before
the first op; progress and the result go back as length-prefixed pickle frames on a private
copy of stdout (fd 1 itself is pointed at stderr so stray prints cannot corrupt it).

Started as a zygote (ZYGOTE_FD set), the process imports its framework and then only forks
workers on request (fork_workers); each forked worker goes on as above, in the state a fresh
process has after the import.

This module's top level imports no framework: the parent imports it for the frame
functions.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback

_HEADER = struct.Struct("<Q")


def write_frame(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream):
    """The next object, or None at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


WORKER_NICENESS = 19  # the lowest priority: a page renders and a chart draws while workers import or train
PARENT_POLL_S = 0.2  # how often a worker checks that its parent is alive


def exit_with_parent(interval: float = PARENT_POLL_S) -> None:
    """End this process at once when the parent that started it dies (e.g. the server is SIGKILLed).

    A daemon thread watches os.getppid(): it changes (to 1 or a subreaper) when the parent dies,
    whatever the main thread is doing (importing, waiting on stdin, deep inside a fit). Not
    prctl(PR_SET_PDEATHSIG): that fires when the parent's *thread* ends, and Streamlit starts
    workers from short-lived script threads.
    """
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# Set by the pool on a zygote (core.pool.Zygote): the socket its fork requests arrive on.
ZYGOTE_FD = "DIVERGENCE_LAB_ZYGOTE_FD"


def main() -> None:
    zygote = os.environ.pop(ZYGOTE_FD, None)
    exit_with_parent()
    os.nice(WORKER_NICENESS)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    fw, K, import_s = import_framework_timed()
    if zygote is not None:
        out = fork_workers(socket.socket(fileno=int(zygote)), out, import_s)  # returns in a forked worker only
    write_frame(out, {"type": "ready", "import_s": import_s, "pid": os.getpid()})
    job = read_frame(inp)
    if job is None:
        return
    write_frame(out, serve(fw, K, job, import_s, lambda event: write_frame(out, event), lambda: read_frame(inp)))


def fork_workers(requests: socket.socket, out, import_s: float):
    """A zygote: this process imported its framework and does nothing else. Each request on `requests`
    carries a worker's three descriptors (job pipe, frame pipe, stderr file); the zygote forks a worker,
    answers with its pid, and reports each worker's exit code as an "exited" frame on `out`.

    Returns only in a forked worker, with that worker's frame stream: it then lives as `main` goes on,
    in the state a fresh process has after the import (Python's `random` reseeds itself at fork; NumPy's
    global generator is reseeded here; nothing of the framework has run yet).
    """
    write_frame(out, {"type": "ready", "import_s": import_s, "pid": os.getpid()})
    # A worker's exit wakes the zygote (SIGCHLD through a wakeup pipe): idle, it sleeps in select.
    woken, wake = os.pipe()
    os.set_blocking(woken, False)
    os.set_blocking(wake, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake)
    workers = set()
    while True:
        ready = select.select([requests, woken], [], [])[0]
        if woken in ready:
            os.read(woken, 4096)
        if requests in ready:
            message, fds, _, _ = socket.recv_fds(requests, 1, 3)
            if not message:  # the pool closed its end
                os._exit(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                requests.close()
                out.close()
                return _forked_worker(fds, (woken, wake))
            for fd in fds:
                os.close(fd)
            workers.add(pid)
            requests.sendall(struct.pack("<q", pid))
        while workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                break
            workers.discard(pid)
            write_frame(out, {"type": "exited", "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})


def _forked_worker(fds: list[int], zygote_fds: tuple[int, ...]):
    """In a worker just forked: drop what was the zygote's, take the job pipe as stdin and the stderr file
    as fds 1 and 2, watch the zygote, reseed NumPy's global generator; the worker's frame stream."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in zygote_fds:
        os.close(fd)
    job_in, frames_out, stderr = fds
    os.dup2(job_in, 0)
    os.dup2(stderr, 2)
    os.dup2(stderr, 1)
    os.close(job_in)
    os.close(stderr)
    exit_with_parent()  # the zygote's watch thread did not survive the fork
    if "numpy" in sys.modules:  # Keras's NumPy batch shuffle (JAX) draws from it unseeded, as in a fresh process
        sys.modules["numpy"].random.seed()
    return os.fdopen(frames_out, "wb")


# Keras imports these when they are installed, for what no run uses (its scikit-learn wrappers, DataFrame
# inputs, notebook display of saved files). Hidden, a TensorFlow worker's import took ~1.3 s less (2 cores, three
# runs each way); the tests against plain scripts, which import them all, check that no number changes.
UNUSED_IN_WORKERS = ("sklearn", "pandas", "IPython")


def import_framework_timed():
    """(framework, Keras module, seconds the import took) for this process's environment (core.engines)."""
    started = time.perf_counter()
    from core.backends import _Hidden, import_framework

    sys.meta_path.insert(0, _Hidden(set(UNUSED_IN_WORKERS)))

    if compiled := os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # JAX's compiled programs (core.engines)
        from pathlib import Path

        from core.storage import private_dir

        private_dir(Path(compiled))
    fw, K = import_framework(os.environ.get("KERAS_BACKEND", "tensorflow"))
    return fw, K, time.perf_counter() - started


def serve(fw, K, job: dict, import_s: float, emit, receive) -> dict:
    """Train one job; its result message, or an error message naming the cause (the parent reports it).

    `emit(event)` sends progress and A's initial weights; `receive()` returns the next message for this run
    (its peer's initial weights), through the worker's pipes.
    """
    job["import_s"] = import_s
    try:
        return {"type": "result", **run_job(fw, K, job, emit, receive)}
    except Exception as e:
        return {"type": "error", "message": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}


def run_job(fw, K, job: dict, emit, receive) -> dict:
    import importlib

    from core import backends, engine_keras
    from core.engines import engine
    from core.preprocess import preprocess

    run, ds = job["run"], job["data"]
    t0 = time.perf_counter()
    e = engine(run.engine.name)
    if (e.framework, e.keras or K.__name__) != (fw.__name__, K.__name__):
        raise RuntimeError(f"worker imported {fw.__name__} and {K.__name__} but the run asks for the {e.name} engine")
    backends.configure(fw, run)

    def wait_for_init():
        if not job.get("init_from_peer"):
            return None
        message = receive()
        if message is None or message.get("type") != "init_weights":
            raise RuntimeError("the peer's initial weights never arrived")
        return message["weights"]

    inputs = preprocess(ds, run.preprocess, engine_keras.keras_normalizer(K))
    module, function = e.trainer.split(":")
    train = getattr(importlib.import_module(module), function)
    if job.get("then") is None:
        return _outcome(fw, run, train(K, e, run, ds, *inputs[:3], emit, wait_for_init), inputs, job, t0)
    # Two models in one process, as in a notebook (the article's Example 1): the seeds are set once,
    # A is built with `keras.Sequential`, then B with `tf.keras.Sequential`, and only then is each trained.
    second = job["then"]
    inputs_b = preprocess(ds, second.preprocess, engine_keras.keras_normalizer(K))
    seeding = engine_keras.prepare(K, e, run)
    model_a = engine_keras.build_model(K, run.model, run, ds, inputs[0].shape[1])
    model_b = engine_keras.build_model(fw.keras, second.model, second, ds, inputs_b[0].shape[1])
    shared = {"classes": [f"{type(m).__module__}.{type(m).__qualname__}" for m in (model_a, model_b)],
              "same_class": type(model_a) is type(model_b), "built_with": [f"{K.__name__}.Sequential",
                                                                          "tf.keras.Sequential"]}
    a = _outcome(fw, run, train(K, e, run, ds, *inputs[:3], emit, lambda: None, built=(model_a, seeding)),
                 inputs, job, t0)
    t1 = time.perf_counter()
    b = _outcome(fw, second, train(K, e, second, ds, *inputs_b[:3], lambda event: emit({**event, "second": True}),
                                   lambda: None, built=(model_b, seeding)), inputs_b, job, t1)
    for outcome, order in ((a, 1), (b, 2)):
        outcome["effective"]["same_process"] = {**shared, "built": order}
    return {**a, "second": b}


def inputs_digest(x_train, y_train) -> str:
    """What preprocessing handed to training, as one digest (dtype, shape and bytes of each array)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for a in (x_train, y_train):
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}|{a.shape}|".encode() + a.tobytes())
    return digest.hexdigest()


def _outcome(fw, run, record: dict, inputs: tuple, job: dict, t0: float) -> dict:
    """What a run sends back: its record, the inputs it trained on (as a digest) and its settings in effect."""
    import numpy as np

    from core import backends

    x_train, y_train, x_test, grid = inputs
    rec = record["recording"]
    return {
        "history": rec.history,
        "diverged_epoch": rec.diverged_epoch,
        "weights": rec.weight_arrays(),
        "predictions": rec.prediction_array(),
        "recorded_epochs": rec.epochs,
        "grid_predictions": None if grid is None else np.asarray(record["predict"](grid), dtype=np.float64),
        "n_train_rows": int(len(x_train)),
        # What preprocessing handed to training: the diagnosis compares A's and B's.
        "train_inputs_digest": inputs_digest(x_train, y_train),
        "test_inputs": np.asarray(x_test),
        "effective": {**record["effective"], **backends.effective(fw, run)},
        "versions": {**record["versions"], "numpy": np.__version__, "python": sys.version.split()[0]},
        "timings": {"import_s": job["import_s"], "build_s": rec.initialised_at - t0,
                    "train_s": time.perf_counter() - rec.initialised_at},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    # Skip the interpreter's teardown: with TensorFlow loaded it takes about a second, and a worker
    # has nothing left to save (the parent reads frames only; it ends used workers with SIGKILL).
    code = 0
    try:
        main()
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
