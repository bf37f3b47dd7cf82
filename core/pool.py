"""Pristine worker processes: started ahead of need, used once, bounded by memory.

The parent side of `core.worker`. A `WorkerPool` keeps a few workers warm (TensorFlow
already imported) for the environments it saw last, never holds more live workers
than the machine's (or container's) memory allows, and replaces each worker after
its one run; where memory allows, each worker is forked from a zygote that imported
its environment's framework once (`Zygote`). `run_jobs` drives a batch of runs
through the pool: it forwards progress, hands one run's initial weights to another,
and turns a crash, a kill, a timeout or a cancel into an error result that names the
cause.
"""

from __future__ import annotations

import atexit
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core import machine
from core.config import RunConfig
from core.engines import ENGINES, worker_env, worker_mb
from core.worker import ZYGOTE_FD, read_frame, write_frame

ROOT = Path(__file__).resolve().parent.parent
# The lightest worker: it bounds how many workers the machine's memory could hold at all; each
# worker then counts with its own engine's figure (core.engines) against that memory.
WORKER_MB = min(e.worker_mb for e in ENGINES.values())
DEFAULT_TIMEOUT_S = 900.0
# Environments a pool keeps a zygote for (core.pool.Zygote) by default: a pair's two, and one more.
MAX_ZYGOTES = 3
# What a worker process runs (tests swap in a framework-free worker that speaks the same frames).
WORKER_COMMAND = (sys.executable, "-m", "core.worker")


def default_max_workers() -> int:
    by_memory = int(machine.memory_for_workers_mb() // WORKER_MB)
    return max(1, min(by_memory, max(2, os.cpu_count() or 1)))


def worker_environ(env: tuple[tuple[str, str | None], ...]) -> dict[str, str]:
    """The whole environment of a worker (or zygote) for a run's variables (core.engines.worker_env)."""
    full = {k: v for k, v in os.environ.items()}
    full["TF_CPP_MIN_LOG_LEVEL"] = full.get("TF_CPP_MIN_LOG_LEVEL", "2")
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for key, value in env:
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return full


class Zygote:
    """A worker process that imported one environment's framework and then only forks workers for it.

    A forked worker starts where a fresh one stands once its import is done, without paying the import
    (seconds of CPU for TensorFlow on every run); the tests check that its runs are bitwise a fresh
    process's (core.worker.fork_workers).
    """

    def __init__(self, env: tuple[tuple[str, str | None], ...], command: tuple[str, ...]):
        self.env = env
        ours, theirs = socket.socketpair()
        self.requests = ours
        self.stderr = tempfile.TemporaryFile()
        full = {**worker_environ(env), ZYGOTE_FD: str(theirs.fileno())}
        self.proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=full, cwd=str(ROOT), pass_fds=(theirs.fileno(),))
        theirs.close()
        self.settled = threading.Event()  # ready to fork, or ended
        self.ended = threading.Event()
        self.workers: dict[int, ForkedProcess] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while (message := read_frame(self.proc.stdout)) is not None:
                if message["type"] == "ready":
                    self.settled.set()
                elif message["type"] == "exited":
                    with self.lock:
                        worker = self.workers.pop(message["pid"], None)
                    if worker is not None:
                        worker.exited(message["returncode"])
        except Exception:  # a torn frame: the zygote is gone
            pass
        finally:
            with self.lock:
                self.ended.set()
                self.settled.set()
                orphans, self.workers = list(self.workers.values()), {}
            for worker in orphans:  # they end themselves once their parent is gone (core.worker.exit_with_parent)
                worker.exited(1)

    def alive(self) -> bool:
        return not self.ended.is_set()

    def fork(self, worker: ForkedProcess, fds: tuple[int, int, int]) -> int | None:
        """Fork a worker that reads jobs on fds[0], writes frames on fds[1] and errors on fds[2]; its pid, or None
        when the zygote ended before it could (waits while the zygote imports)."""
        self.settled.wait()
        with self.lock:
            if self.ended.is_set() or worker.killed:
                return None
            try:
                socket.send_fds(self.requests, [b"f"], list(fds))
                answer = b""
                while len(answer) < 8 and (chunk := self.requests.recv(8 - len(answer))):
                    answer += chunk
            except OSError:
                return None
            if len(answer) < 8:
                return None
            pid = struct.unpack("<q", answer)[0]
            self.workers[pid] = worker
            return pid

    def failure(self) -> bytes:
        """What the zygote wrote to stderr (why it ended, when it did). Read without moving the file's offset:
        each of its workers asks on a thread of its own, and a seek and read of one ran into another's."""
        try:
            fd = self.stderr.fileno()
            return os.pread(fd, os.fstat(fd).st_size, 0)
        except (ValueError, OSError):  # closed: the pool ended it
            return b""

    def kill(self) -> None:
        """End the zygote; workers it forked end themselves within core.worker.PARENT_POLL_S."""
        self.proc.kill()
        self.requests.close()
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()


class ForkedProcess:
    """A worker forked by a `Zygote`, with what the pool uses of subprocess.Popen: pid, stdin, stdout, poll,
    kill, wait. While the zygote still imports, it is forked on a thread of its own once the zygote is ready;
    until then pid is None, the job waits in its pipe, and kill ends it the moment it exists."""

    def __init__(self, zygote: Zygote, stderr) -> None:
        job_in, self_out = os.pipe()
        self_in, frames_out = os.pipe()
        self.stdin = os.fdopen(self_out, "wb")
        self.stdout = os.fdopen(self_in, "rb")
        self.pid: int | None = None
        self.returncode: int | None = None
        self.ended = threading.Event()
        self.killed = False
        self.lock = threading.Lock()
        if zygote.settled.is_set():  # forked now (milliseconds): its pid is known at once, as a started process's
            self._fork(zygote, (job_in, frames_out, stderr))
        else:
            threading.Thread(target=self._fork, args=(zygote, (job_in, frames_out, stderr)), daemon=True).start()

    def _fork(self, zygote: Zygote, fds: tuple) -> None:
        job_in, frames_out, stderr = fds
        pid = zygote.fork(self, (job_in, frames_out, stderr.fileno()))
        os.close(job_in)
        os.close(frames_out)  # the worker holds its own copy: its end of the frames ends with it
        with self.lock:
            self.pid = pid
            if pid is not None and self.killed:
                self._signal()
        if pid is not None:
            return
        if self.killed:  # ended before it was forked
            self.exited(-signal.SIGKILL)
            return
        stderr.write(zygote.failure())  # why the worker never started: its zygote ended (its import failed)
        stderr.flush()
        self.exited(zygote.proc.wait() or 1)

    def _signal(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def exited(self, returncode: int) -> None:
        self.returncode = returncode
        self.ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        with self.lock:
            self.killed = True
            if self.pid is not None and self.returncode is None:
                self._signal()

    def wait(self, timeout: float | None = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired("forked worker", timeout)
        return self.returncode


class Worker:
    """One worker process (started by the pool, or forked by a zygote) and a thread reading its frames."""

    def __init__(self, env: tuple[tuple[str, str | None], ...], command: tuple[str, ...],
                 zygote: Zygote | None = None):
        self.env = env
        self.mb = worker_mb(env)
        self.stderr = tempfile.TemporaryFile()
        self.started_at = time.perf_counter()
        self.ready_at: float | None = None
        if zygote is None:
            self.proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, env=worker_environ(env), cwd=str(ROOT))
        else:
            self.proc = ForkedProcess(zygote, self.stderr)
        self.messages: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        self.reaping = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while (message := read_frame(self.proc.stdout)) is not None:
                if message.get("type") == "ready":
                    self.ready_at = time.perf_counter()
                self.messages.put(message)
        except Exception as e:  # a torn frame is a crash like any other
            self.messages.put({"type": "error", "message": f"unreadable message from worker: {e}"})
        finally:
            self.ended.set()

    def send(self, obj) -> None:
        write_frame(self.proc.stdin, obj)

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.ended.is_set()

    def kill(self) -> None:
        """End the process now. Waiting while the kernel frees it (a tenth of a second for a worker
        holding TensorFlow) happens on a thread of its own, not on the path of the result."""
        if self.proc.poll() is None:
            self.proc.kill()
        if not self.reaping.is_set():
            self.reaping.set()
            threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def death_reason(self) -> str:
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        if rc < 0:
            return f"the worker process was killed by {signal.Signals(-rc).name}"
        self.stderr.seek(0)
        lines = [line for line in self.stderr.read().decode(errors="replace").splitlines() if line.strip()]
        return f"the worker process exited with code {rc}" + (f": {lines[-1].strip()}" if lines else "")


class WorkerPool:
    def __init__(self, max_workers: int | None = None, warm: int = 2, warm_run: RunConfig | None = None,
                 command: tuple[str, ...] | None = None, refill_delay_s: float = 0.0, use_zygotes: bool = True,
                 max_zygotes: int = MAX_ZYGOTES):
        self.command = command or WORKER_COMMAND
        self.refill_delay_s = refill_delay_s  # how long after its last run the pool starts warming fresh workers
        self.refill_timer: threading.Timer | None = None  # the delayed refill, while it waits or runs
        self.capacity = max_workers or default_max_workers()
        self.memory_mb = machine.memory_for_workers_mb()
        self.warm_target = min(warm, self.capacity)
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.envs_used: list = []  # environments of the runs since the last refill, latest last
        self.lock = threading.Lock()
        self.closed = False
        self.zygotes: dict[tuple, Zygote] = {}  # by environment, least recently used first
        self.max_zygotes = max_zygotes
        # Zygotes only where memory holds them beside a full pool (not on Community Cloud's smallest tier).
        self.forks = use_zygotes and self.memory_mb >= (self.capacity + max_zygotes) * max(
            e.worker_mb for e in ENGINES.values())
        for _ in range(self.warm_target):
            self.idle.append(self._start(worker_env(warm_run or RunConfig())))

    def _start(self, env) -> Worker:
        """A new worker for `env`: forked from its environment's zygote where the pool keeps zygotes (caller holds
        the lock, or the pool is being built)."""
        return Worker(env, self.command, self._zygote(env) if self.forks else None)

    def _zygote(self, env) -> Zygote | None:
        """`env`'s zygote, started if need be; None when every zygote kept has live workers."""
        zygote = self.zygotes.pop(env, None)
        if zygote is not None and not zygote.alive():
            zygote.kill()
            zygote = None
        if zygote is None:
            busy_envs = {w.env for w in (*self.idle, *self.busy)}
            spare = [e for e, z in self.zygotes.items() if e not in busy_envs or not z.alive()]
            if len(self.zygotes) >= self.max_zygotes and not spare:
                return None  # every zygote has workers alive (a zygote's workers end with it)
            while len(self.zygotes) >= self.max_zygotes:
                self.zygotes.pop(spare.pop(0)).kill()
            zygote = Zygote(env, self.command)
        self.zygotes[env] = zygote  # now the most recently used
        return zygote

    def live(self) -> int:
        return len(self.idle) + len(self.busy)

    def room_for(self, env) -> bool:
        """Whether one more worker for `env` fits: fewer than `capacity`, and its engine's memory fits beside
        the live workers' (a lone worker always may start)."""
        live_mb = sum(w.mb for w in (*self.idle, *self.busy))
        return self.live() < self.capacity and (not self.live() or live_mb + worker_mb(env) <= self.memory_mb)

    def try_acquire(self, env) -> Worker | None:
        """A worker for `env` (warm if one is), or None while the pool is at capacity."""
        with self.lock:
            if self.closed:
                raise RuntimeError("the worker pool is shut down")
            for w in [w for w in self.idle if not w.alive()]:  # a warm worker that died while waiting
                self.idle.remove(w)
                w.kill()
            for w in self.idle:
                if w.env == env:
                    self.idle.remove(w)
                    self.busy.add(w)
                    return w
            while not self.room_for(env) and self.idle:
                self.idle.pop(0).kill()  # a warm worker for another environment makes room
            if self.room_for(env):
                w = self._start(env)
                self.busy.add(w)
                return w
            return None

    def release(self, worker: Worker) -> None:
        """A worker is used for one run only: end it, and once no run is left, warm fresh ones.

        Refilling waits for the last run (a new worker importing TensorFlow would take CPU
        from the runs still training: they share a niceness), and then `refill_delay_s`.
        """
        worker.kill()
        with self.lock:
            self.busy.discard(worker)
            self.envs_used.append(worker.env)
            if self.closed or self.busy:
                return
            if not self.refill_delay_s:
                self._refill()
                return
            if self.refill_timer is not None:
                self.refill_timer.cancel()  # one refill, after the latest run
            self.refill_timer = threading.Timer(self.refill_delay_s, self._refill_when_idle)
            self.refill_timer.daemon = True
            self.refill_timer.start()

    def _refill_when_idle(self) -> None:
        with self.lock:
            if not self.closed and not self.busy:  # else the runs under way refill when they end
                self._refill()

    def _refill(self) -> None:
        """Warm fresh workers for the environments used last (caller holds the lock)."""
        while self.envs_used and len(self.idle) < self.warm_target and self.room_for(self.envs_used[-1]):
            self.idle.append(self._start(self.envs_used.pop()))
        self.envs_used.clear()

    @property
    def refill_pending(self) -> bool:
        """Whether a delayed refill is still waiting (or running)."""
        return self.refill_timer is not None and self.refill_timer.is_alive()

    def wait_warm(self, timeout: float = 120.0) -> None:
        """Block until a delayed refill has run and every idle worker has imported its framework (for
        benchmarks and tests)."""
        deadline = time.monotonic() + timeout
        while self.refill_pending and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            idle = list(self.idle)
        for w in idle:
            while w.ready_at is None and w.alive() and time.monotonic() < deadline:
                time.sleep(0.05)

    def shutdown(self) -> None:
        with self.lock:
            self.closed = True
            workers = self.idle + list(self.busy)
            self.idle, self.busy = [], set()
            zygotes, self.zygotes = list(self.zygotes.values()), {}
        for w in workers:
            w.kill()
        for zygote in zygotes:
            zygote.kill()


# The app's pool warms fresh workers this long after a Run's last run ends, once the result has drawn: their
# imports beside the browser drawing the Overview delayed it (measured in the browser: ~0.25 s on 2 cores).
APP_REFILL_DELAY_S = 2.0
_default_pool: WorkerPool | None = None
_default_lock = threading.Lock()


def default_pool() -> WorkerPool:
    """The process-wide pool, shared by every thread (every Streamlit session)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool.closed:
            _default_pool = WorkerPool(refill_delay_s=APP_REFILL_DELAY_S)
            atexit.register(_default_pool.shutdown)
        return _default_pool


@dataclass
class Job:
    key: str  # the name results and events are reported under ("a", "b", ...)
    run: RunConfig
    data: object  # core.data.Dataset
    init_from: str | None = None  # key of the job whose initial weights this one starts from
    then: RunConfig | None = None  # a second model built after this one in the same process, then trained


Progress = Callable[[str, dict], None]


def run_jobs(pool: WorkerPool, jobs: list[Job], on_event: Progress | None = None,
             cancel: threading.Event | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
             initial: dict[str, dict] | None = None, on_result: Progress | None = None,
             on_init: Progress | None = None) -> dict[str, dict]:
    """Run every job in its own fresh worker, in parallel as capacity allows.

    Returns key -> the worker's result message ({"type": "result", ...}) or an error
    ({"type": "error", "message": ...}). Never raises for a failed run. `initial` holds
    initial weights known beforehand (key -> name -> array) for jobs whose `init_from`
    is not in this batch; `on_result(key, result)` sees each result as soon as it ends,
    `on_init(key, weights)` each run's initial weights as soon as it has built its model.
    """
    on_event = on_event or (lambda key, event: None)
    cancel = cancel or threading.Event()
    pending = list(jobs)
    active: dict[str, tuple[Worker, Job, float]] = {}
    results: dict[str, dict] = {}
    initial = dict(initial or {})
    awaiting_init: list[str] = []  # running jobs that still wait for their source's initial weights
    unannounced: list[str] = []  # running jobs whose "started" event waits for their process

    def finish(key: str, outcome: dict, notify: bool = True) -> None:
        worker = active.pop(key)[0]
        pool.release(worker)
        results[key] = outcome
        if on_result is not None and outcome["type"] == "result":
            on_result(key, outcome)
        if notify:
            on_event(key, end_event(outcome))

    try:
        while pending or active:
            if cancel.is_set():
                cancel_all(active, pending, finish, results)
                break
            for job in list(pending):
                if not may_start(job, pending, initial, active, results):
                    continue
                worker = pool.try_acquire(worker_env(job.run))
                if worker is None:
                    break
                pending.remove(job)
                submitted = time.perf_counter()
                active[job.key] = (worker, job, submitted)
                _send(worker, {"type": "job", "run": job.run, "data": job.data, "init_from_peer": bool(job.init_from),
                               "then": job.then})
                if job.init_from:
                    awaiting_init.append(job.key)
                unannounced.append(job.key)
            # "started" once a run's process exists (a forked one: once its zygote is ready), in the order they started
            while unannounced and (unannounced[0] not in active or active[unannounced[0]][0].proc.pid is not None):
                key = unannounced.pop(0)
                if key in active:
                    on_event(key, {"type": "started", "pid": active[key][0].proc.pid})
            for key, (worker, job, submitted) in list(active.items()):
                _drain(key, worker, submitted, initial, on_event, finish, timeout_s, on_init)
            for key in list(awaiting_init):
                if key not in active:  # it ended meanwhile (crashed, timed out)
                    awaiting_init.remove(key)
                    continue
                worker, job = active[key][:2]
                if job.init_from in initial:
                    _send(worker, {"type": "init_weights", "weights": initial[job.init_from]})
                    awaiting_init.remove(key)
                elif job.init_from in results:
                    awaiting_init.remove(key)
                    finish(key, {"type": "error", "message": NO_INIT.format(job.init_from)})
            cancel.wait(0.01)
    finally:  # the caller was interrupted (e.g. Streamlit's Stop): end every worker, report nothing
        for key in list(active):
            finish(key, {"type": "error", "message": "interrupted"}, notify=False)
    return results


NO_INIT = "not run: {} failed before its initial weights"


def end_event(outcome: dict) -> dict:
    """The progress event that says a run ended: done, or an error with its message."""
    if outcome["type"] == "result":
        return {"type": "done"}
    return {"type": "error", "message": outcome["message"]}


def cancel_all(active: dict, pending: list[Job], finish, results: dict) -> None:
    """Stop: every running job ends as cancelled (finish ends its worker), every pending one is never started."""
    for key in list(active):
        finish(key, {"type": "error", "message": "cancelled", "cancelled": True})
    for job in pending:
        results[job.key] = {"type": "error", "message": "cancelled", "cancelled": True}


def may_start(job: Job, pending: list[Job], initial: dict, active: dict, results: dict) -> bool:
    """Whether `job` can start now. One that starts from another's initial weights starts once that one is
    running (it builds its own model meanwhile and waits for the weights); if that one ended without initial
    weights, `job` fails here and leaves `pending`."""
    if job.init_from and job.init_from not in initial and job.init_from not in active:
        if job.init_from in results:
            pending.remove(job)
            results[job.key] = {"type": "error", "message": NO_INIT.format(job.init_from)}
        return False
    return True


def _send(worker: Worker, message: dict) -> None:
    try:
        worker.send(message)
    except OSError:  # it died before reading this; _drain reports why
        pass


def _drain(key, worker: Worker, submitted: float, initial: dict, on_event, finish, timeout_s: float,
           on_init: Progress | None) -> None:
    while True:
        try:
            message = worker.messages.get_nowait()
        except queue.Empty:
            break
        kind = message["type"]
        if kind == "init":
            initial[key] = message["weights"]
            if on_init is not None:
                on_init(key, message["weights"])
        elif kind == "epoch":
            on_event(key, message)
        elif kind in ("result", "error"):
            if kind == "result":
                start = worker.ready_at - submitted if worker.ready_at else 0.0
                message["timings"]["worker_wait_s"] = max(0.0, start)
                message["timings"]["total_s"] = time.perf_counter() - submitted
                message["timings"]["ended_at"] = time.time()  # wall clock: spans of runs across processes
            finish(key, message)
            return
    if worker.ended.is_set() and worker.messages.empty():
        finish(key, {"type": "error", "message": worker.death_reason()})
    elif time.perf_counter() - submitted > timeout_s:
        worker.kill()
        finish(key, {"type": "error", "message": f"timed out after {timeout_s:.0f} s; the worker was stopped"})
