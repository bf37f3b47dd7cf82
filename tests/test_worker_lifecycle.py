"""A worker ends soon after its parent dies (e.g. the Streamlit server is SIGKILLed), whatever it is doing."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The parent: workers of core.pool, one waiting for a job, one built and waiting for the peer's
# initial weights, one training a long run (each epoch takes many seconds, so the worker writes
# nothing that would fail on the dead pipe); three started as processes of their own, three forked
# by a zygote. They are started from a thread that ends before they are used. It prints their pids
# and the zygote's, then waits to be killed.
PARENT = textwrap.dedent("""
    import json, sys, threading, time
    from dataclasses import replace
    from core.config import DataConfig, RunConfig, TrainingConfig
    from core.data import load
    from core.engines import worker_env
    from core.pool import WORKER_COMMAND, Worker, Zygote

    run = RunConfig(training=TrainingConfig(epochs=3, batch_size=1))
    run = replace(run, numerics=replace(run.numerics, device="cpu"))
    data = load(DataConfig(dataset="moons", n_samples=200_000))
    workers, zygotes = {}, []

    def start():  # from a thread that ends at once, as Streamlit's script threads do: the workers must outlive it
        zygote = Zygote(worker_env(run), WORKER_COMMAND)
        workers.update({kind + state: Worker(worker_env(run), WORKER_COMMAND, zygote if kind else None)
                        for kind in ("", "forked ") for state in ("idle", "awaiting_init", "training")})
        zygotes.append(zygote)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()

    def next_message(w, kind):
        while (m := w.messages.get(timeout=240))["type"] != kind:
            if m["type"] == "error":
                sys.exit(m["message"])

    for w in workers.values():
        next_message(w, "ready")
    for kind in ("", "forked "):
        for state in ("awaiting_init", "training"):
            workers[kind + state].send({"type": "job", "run": run, "data": data,
                                        "init_from_peer": state == "awaiting_init"})
        next_message(workers[kind + "training"], "init")  # built, and fit is starting
    time.sleep(1.0)
    pids = {state: w.proc.pid for state, w in workers.items()}
    print(json.dumps({**pids, "zygote": zygotes[0].proc.pid}), flush=True)
    time.sleep(600)
""")


def _ends(pid: int, timeout: float) -> bool:
    """The process is gone (or a zombie: it exited, and whoever adopted it has not reaped it yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_workers_end_when_their_parent_is_killed():
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = {}
    try:
        line = parent.stdout.readline()
        assert line, f"the parent ended before its workers were ready: {parent.stderr.read()[-2000:]}"
        pids = json.loads(line)
        assert not any(_ends(pid, 0) for pid in pids.values()), "a worker died with the thread that started it"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        survivors = [state for state, pid in pids.items() if not _ends(pid, timeout=3.0)]
        assert not survivors, f"workers still alive 3 s after their parent was killed: {survivors}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in pids.values():  # only the workers this test made
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        parent.stdout.close()
        parent.stderr.close()
