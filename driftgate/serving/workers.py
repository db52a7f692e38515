"""Worker processes for `isolation: "process"` (see serving/isolation.py): a spawner thread, one
supervised worker per call slot, the pool the micro-batcher calls, and the worker's own loop."""

from __future__ import annotations

import builtins
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from driftgate.child import describe_exit, die_with_parent
from driftgate.registry.schema import Columns, frame_of
from driftgate.serving.model_errors import ModelUnavailable, Scores, WorkerCrashed, WorkerHung

log = logging.getLogger("driftgate.serving")

# How long a worker may take to start and load its model.
START_TIMEOUT_S = 120.0
# Restart backoff after consecutive failures (crashes or hangs): the first restart is immediate.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to load its model: the artifact itself, so it never opens the store."""

    label: str  # "model vN", for messages
    # Or how to read it (from the store) at each start: the server then holds no copy between starts.
    artifact: bytes | Callable[[], bytes]
    kind: str
    trust: bool
    classes: list[Any] | None


class Spawner:
    """Starts worker processes from one long-lived thread: Linux sends the parent-death signal when
    the *thread* that forked the child ends, so a worker forked by a short-lived thread would die
    with it. Refuses once closed: nothing is spawned while the server shuts down."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.closed = False

    def run(self, start: Callable[[], Any]) -> Any:
        future: Future[Any] = Future()
        with self._lock:
            if self.closed:
                raise ModelUnavailable("the server is shutting down; no model worker is started")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="driftgate-spawner", daemon=True)
                self._thread.start()
            self._requests.put((future, start))
        return future.result()

    def _loop(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            future, start = item
            if self.closed:
                future.set_exception(ModelUnavailable("the server is shutting down; no model worker is started"))
                continue
            try:
                future.set_result(start())
            except BaseException as exc:
                future.set_exception(exc)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._thread is not None:
                self._requests.put(None)


class ProcessWorker:
    """One worker process for one endpoint version: started on demand, restarted after a crash."""

    def __init__(self, spec: WorkerSpec, spawner: Spawner, hang_after_s: float) -> None:
        self.spec = spec
        self.spawner = spawner
        self.hang_after_s = hang_after_s
        self._lock = threading.Lock()  # one call at a time
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._failures = 0  # consecutive crashes or hangs
        self._retry_at = 0.0
        self._retire = False  # close when the call in flight ends
        self._starting = False
        self.closed = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def ensure_started(self) -> None:
        with self._lock:
            self._ensure_started()

    def restart_soon(self) -> None:
        """After a crash or hang: start the next worker now, in the background, unless the backoff
        holds it (then the next call starts it), so the next request finds it ready or starting."""
        if self.closed or self._retry_at > time.monotonic():
            return

        def restart() -> None:
            with contextlib.suppress(ModelUnavailable):
                self.ensure_started()

        threading.Thread(target=restart, name="driftgate-worker-restart", daemon=True).start()

    def call(self, columns: Columns) -> Scores:
        # The pool hands each call an idle worker, so a held lock is a restart in the background.
        if not self._lock.acquire(blocking=False):
            if self._starting:
                raise ModelUnavailable(
                    f"the worker of {self.spec.label} is restarting after a failure; retry shortly", retry_after=1
                )
            self._lock.acquire()
        try:
            return self._call(columns)
        finally:
            self._lock.release()

    def _call(self, columns: Columns) -> Scores:
        self._ensure_started()
        conn = self._conn
        assert conn is not None
        try:
            conn.send(columns)
            if not conn.poll(self.hang_after_s):
                self._failed()
                raise WorkerHung(
                    f"the worker of {self.spec.label} ran past timeout_ms ({self.hang_after_s:.1f} s) "
                    "and was stopped; the next request starts a fresh one"
                )
            ok, payload = conn.recv()
        except (EOFError, OSError):
            died = self._failed()
            if self.closed:
                raise ModelUnavailable(f"{self.spec.label}: the server is shutting down") from None
            raise WorkerCrashed(
                f"the worker process of {self.spec.label} crashed while scoring ({died}); "
                "the next request starts a fresh one"
            ) from None
        finally:
            if self._retire:
                self._stop()
        self._failures = 0
        if ok:
            return payload
        name, text = payload
        raise _remote_error(name, text)

    def _ensure_started(self) -> None:
        if self.closed:
            raise ModelUnavailable(f"{self.spec.label}: its worker is closed (endpoint changed, or server stopping)")
        if self._process is not None and self._process.is_alive():
            return
        if self._process is not None:  # died between calls (killed from outside, OOM)
            self._failed()
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise ModelUnavailable(
                f"the worker of {self.spec.label} is restarting after {self._failures} failures in a row; "
                f"retry in {wait:.1f} s",
                retry_after=max(1, round(wait)),
            )
        if self._failures:
            log.warning("starting a new worker process for %s (%d failures in a row)", self.spec.label, self._failures)
        self._starting = True
        try:
            self._start()
        finally:
            self._starting = False

    def _start(self) -> None:
        self._process, self._conn = self.spawner.run(self._spawn)
        if self._failures:
            self.restarts += 1
        conn = self._conn
        try:
            if not conn.poll(START_TIMEOUT_S):
                raise ModelUnavailable(f"the worker of {self.spec.label} did not start in {START_TIMEOUT_S:.0f} s")
            status, detail = conn.recv()
        except (EOFError, OSError):
            status, detail = "error", f"it exited while starting ({self._describe_exit()})"
        except ModelUnavailable:
            self._failed()
            raise
        if status != "ready":
            self._failed()
            raise ModelUnavailable(f"the worker of {self.spec.label} could not load the model: {detail}")
        if self.closed:  # closed while it started (a background restart): it would outlive its pool
            self._stop()
            raise ModelUnavailable(f"{self.spec.label}: its worker is closed (endpoint changed, or server stopping)")

    def _spawn(self) -> tuple[multiprocessing.process.BaseProcess, Connection]:
        """In the spawner's thread (see `Spawner`)."""
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        spec = self.spec
        artifact = spec.artifact() if callable(spec.artifact) else spec.artifact
        process = ctx.Process(
            target=_worker_main,
            args=(theirs, os.getpid(), artifact, spec.kind, spec.trust, spec.classes),
            name=f"driftgate-worker {spec.label}",
            daemon=True,
        )
        process.start()
        theirs.close()  # the worker holds the only other end: its exit is our EOF
        return process, ours

    def _failed(self) -> str:
        """Reap the worker after a crash or hang; arm the backoff. Returns how it ended."""
        died = self._stop()
        self._failures += 1
        delay = 0.0 if self._failures == 1 else min(BACKOFF_FIRST_S * 2 ** (self._failures - 2), BACKOFF_MAX_S)
        self._retry_at = time.monotonic() + delay
        return died

    def _stop(self) -> str:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return "no process"
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        described = describe_exit(process.exitcode)
        with contextlib.suppress(ValueError):
            process.close()
        return described

    def _describe_exit(self) -> str:
        process = self._process
        if process is None:
            return "no process"
        process.join(timeout=5)
        return describe_exit(process.exitcode)

    def close(self, *, now: bool) -> None:
        """`now`: kill even a call in flight (shutdown); otherwise after the call in flight ends."""
        self.closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._stop()
            finally:
                self._lock.release()
        elif now:
            process = self._process
            with contextlib.suppress(ValueError, AttributeError):  # reaped by the caller meanwhile
                if process is not None and process.is_alive():
                    process.kill()  # the caller's recv() sees EOF and reaps it
        else:
            self._retire = True


class ProcessPool:
    """`size` workers for one endpoint version; the micro-batcher runs at most `size` calls at once,
    each on an idle worker (the most recently used first, so extra workers start only when needed)."""

    def __init__(
        self,
        spec: WorkerSpec,
        spawner: Spawner,
        size: int,
        hang_after_s: float,
        on_failure: Callable[[str], None] | None = None,
        first: ProcessWorker | None = None,
    ) -> None:
        """`on_failure("crash" | "hang")`: told of every worker lost while scoring (metrics), in the
        calling thread; a hang is found after its callers have had their 504. `first`: a worker
        already started for this spec (the one that proved the model loads), adopted as the first."""
        self.spec = spec
        self.on_failure = on_failure
        self.workers = [ProcessWorker(spec, spawner, hang_after_s) for _ in range(size - (first is not None))]
        if first is not None:
            first.hang_after_s = hang_after_s
            self.workers.insert(0, first)
        self._idle: queue.LifoQueue[ProcessWorker] = queue.LifoQueue()
        for worker in reversed(self.workers):
            self._idle.put(worker)

    def score(self, columns: Columns) -> Scores:
        """Blocking, in a batcher thread."""
        worker = self._idle.get()
        try:
            return worker.call(columns)
        except (WorkerCrashed, WorkerHung) as exc:
            worker.restart_soon()
            if self.on_failure is not None:
                self.on_failure("crash" if isinstance(exc, WorkerCrashed) else "hang")
            raise
        finally:
            self._idle.put(worker)

    def start(self) -> None:
        """Start the first worker now (a blocking call: run it off the event loop)."""
        self.workers[0].ensure_started()

    def pids(self) -> list[int]:
        return [pid for w in self.workers if (pid := w.pid) is not None]

    def close(self, *, now: bool) -> None:
        for worker in self.workers:
            worker.close(now=now)


def _remote_error(name: str, text: str) -> Exception:
    """The model's exception, rebuilt from its name and text (its own class may not import or pickle
    here): a builtin one as itself, any other as a stand-in class of the same name, so a 500 reads
    the same in either isolation mode."""
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        with contextlib.suppress(Exception):
            return builtin(text)
    return type(name, (RuntimeError,), {"__module__": "driftgate.serving.isolation"})(text)


# ---- the worker process ----------------------------------------------------------------------------


def _worker_main(
    conn: Connection, parent_pid: int, artifact: bytes, kind: str, trust: bool, classes: list[Any] | None
) -> None:
    die_with_parent(parent_pid, lambda: os._exit(0), kernel_signal=signal.SIGKILL)
    from driftgate.registry import formats

    try:
        model = formats.load(artifact, kind, trust=trust)
        if classes and hasattr(model, "set_classes"):
            model.set_classes(classes)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {str(exc)[:300]}"))
        return
    del artifact
    conn.send(("ready", os.getpid()))
    while True:
        try:
            columns = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone, or closed us
        try:
            reply: tuple[bool, Any] = (True, model.predict(frame_of(columns)))
        except Exception as exc:
            reply = (False, (type(exc).__name__, str(exc)[:300]))
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the answer does not pickle
            conn.send((False, (type(exc).__name__, f"the model's output cannot be sent back: {str(exc)[:200]}")))
