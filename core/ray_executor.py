"""Ray as the executor of a batch: each run a Ray task in a fresh worker process that serves that run only.

Chosen by an address, `DIVERGENCE_LAB_RAY` in the environment or `--ray ADDRESS` on the command line:
"auto" (the cluster this machine belongs to), "ray://host:10001" (a remote one), or "local" (start one on
this machine for this process). With none set, the local worker pool (core.pool) runs every batch.

A run here is what it is in the pool, to the bit: the task's runtime environment sets the run's variables
(core.engines.worker_env), and the task unsets those the run wants unset (a runtime environment can only set
one), before its process imports the framework; `max_calls=1` ends the process after
the run, and the task trains through the worker's own code (core.worker.serve). The app's code travels with
the job (`working_dir`); each node needs the packages of requirements.txt and ray. Progress and A's initial
weights for B go through the batch's one actor (Mailbox), results through the object store, and then into the
same run cache; failures, Stop and timeouts come back as the pool reports them. Imported only where Ray is used.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from core.config import ConfigError
from core.engines import worker_env
from core.pool import NO_INIT, Job, Progress, cancel_all, end_event, may_start

RAY_ENV = "DIVERGENCE_LAB_RAY"
RAY_INSTALL = "pip install ray==2.60.0"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_EXCLUDES = [".git", "test-artifacts", "bench", "tests", "*.png"]  # what a job's working_dir leaves out
POLL_S = 0.05


def address() -> str | None:
    """The Ray address batches run on, or None for the local pool."""
    return os.environ.get(RAY_ENV) or None


def connect(where: str):
    """The ray module, connected to `where` (once per process)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{RAY_ENV}: batches are to run on Ray at {where!r}, but ray is not installed here: "
                          f"{RAY_INSTALL}") from None
    if not ray.is_initialized():
        job = {"runtime_env": {"working_dir": str(ROOT), "excludes": SHIPPED_EXCLUDES},
               "include_dashboard": False, "log_to_driver": False}
        try:
            ray.init(**job) if where == "local" else ray.init(address=where, **job)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{RAY_ENV}: cannot connect to Ray at {where!r} "
                              f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
    return ray


class Mailbox:
    """A batch's messages, in one Ray actor: the runs' progress (and A's initial weights) for the driver, and the
    initial weights the driver hands a run. An actor is a process of its own, so one per batch (not a Ray Queue
    for the events and another for each run that starts from A's weights)."""

    def __init__(self):
        self.events: list = []
        self.letters: dict = {}

    def post(self, key: str, event: dict) -> None:
        self.events.append((key, event))

    def collect(self) -> list:
        events, self.events = self.events, []
        return events

    def deliver(self, key: str, message: dict) -> None:
        self.letters[key] = message

    def pick_up(self, key: str) -> dict | None:
        return self.letters.pop(key, None)


def _train(key: str, job: dict, submitted: float, mailbox) -> dict:
    """The task: one run in this fresh process, as a pool worker trains it."""
    import ray

    started = time.time()
    for name in job["unset"]:  # inherited from the node's environment, but not this run's
        os.environ.pop(name, None)
    from core import worker

    fw, K, import_s = worker.import_framework_timed()

    def receive():  # None if nothing came in time (the run then says its peer's weights never arrived)
        deadline = time.monotonic() + job["timeout_s"]
        while (message := ray.get(mailbox.pick_up.remote(key))) is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return message

    result = worker.serve(fw, K, job, import_s, lambda event: ray.get(mailbox.post.remote(key, event)), receive)
    result["queued_s"] = max(0.0, started - submitted)
    return result


def run_jobs(jobs: list[Job], on_event: Progress | None = None, cancel: threading.Event | None = None,
             timeout_s: float = 900, initial: dict[str, dict] | None = None, on_result: Progress | None = None,
             where: str | None = None) -> dict[str, dict]:
    """core.pool.run_jobs on Ray: key -> the run's result message or an error message; never raises for a run."""
    ray = connect(where or address() or "local")

    task = ray.remote(max_calls=1, num_cpus=1, max_retries=0)(_train)
    on_event = on_event or (lambda key, event: None)
    cancel = cancel or threading.Event()
    initial = dict(initial or {})
    mailbox = ray.remote(num_cpus=0)(Mailbox).remote()
    pending = list(jobs)
    active: dict[str, tuple] = {}  # key -> (object ref, job, submitted, initial weights sent)
    results: dict[str, dict] = {}

    def finish(key: str, outcome: dict, notify: bool = True) -> None:
        ref, job, submitted = active.pop(key)[:3]
        if outcome["type"] == "result":
            queued = outcome.pop("queued_s", 0.0)
            outcome["timings"]["worker_wait_s"] = queued
            ended = time.time()
            outcome["timings"]["total_s"] = ended - submitted
            outcome["timings"]["ended_at"] = ended  # wall clock: spans of runs across processes
        else:
            ray.cancel(ref, force=True)
        results[key] = outcome
        if on_result is not None and outcome["type"] == "result":
            on_result(key, outcome)
        if notify:
            on_event(key, end_event(outcome))

    def drain() -> None:
        for key, event in ray.get(mailbox.collect.remote()):
            if event["type"] == "init":
                initial[key] = event["weights"]
            elif event["type"] == "epoch" and key in active:
                on_event(key, event)

    try:
        while pending or active:
            if cancel.is_set():
                cancel_all(active, pending, finish, results)
                break
            for job in list(pending):
                if not may_start(job, pending, initial, active, results):
                    continue
                pending.remove(job)
                env = dict(worker_env(job.run))
                # (CUDA_VISIBLE_DEVICES left unset by the run stays Ray's: the GPUs Ray gave the task)
                unset = [k for k, v in env.items() if v is None and k != "CUDA_VISIBLE_DEVICES"]
                message = {"type": "job", "run": job.run, "data": job.data, "init_from_peer": bool(job.init_from),
                           "then": job.then, "timeout_s": timeout_s, "unset": unset}
                submitted = time.time()
                ref = task.options(runtime_env={"env_vars": {k: v for k, v in env.items() if v is not None}},
                                   name=f"divergence-lab {job.key}").remote(
                    job.key, message, submitted, mailbox)
                active[job.key] = (ref, job, submitted, False)
                on_event(job.key, {"type": "started"})
            refs = {entry[0]: key for key, entry in active.items()}
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_S) if refs else ([], [])
            drain()  # a finished run's last epochs (and A's initial weights) before its result
            for ref in done:
                key = refs[ref]
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # the task's process died (crash, out of memory) or Ray failed it
                    outcome = {"type": "error", "message": f"the Ray task ended without a result: "
                                                           f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
                finish(key, outcome)
            now = time.time()
            for key, (ref, job, submitted, sent) in list(active.items()):
                if now - submitted > timeout_s:
                    finish(key, {"type": "error", "message": f"timed out after {timeout_s:.0f} s; the Ray task "
                                                             "was stopped"})
                elif job.init_from and not sent:
                    if job.init_from in initial:
                        letter = {"type": "init_weights", "weights": initial[job.init_from]}
                        ray.get(mailbox.deliver.remote(key, letter))
                        active[key] = (ref, job, submitted, True)
                    elif job.init_from in results:
                        finish(key, {"type": "error", "message": NO_INIT.format(job.init_from)})
    finally:  # the caller was interrupted (e.g. Streamlit's Stop): end every task, report nothing
        for key in list(active):
            finish(key, {"type": "error", "message": "interrupted"}, notify=False)
    return results
