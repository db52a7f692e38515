"""Where model calls run: each endpoint version's own threads, or its own supervised processes.

**Which (`isolation`).** `"auto"`, the default, resolves per version when the endpoint is applied
(`runtime.auto_isolation`): threads for models driftgate loads through its own checks (a skops file:
the type allow-list and the tree bounds checks of registry/trust.py, also as an MLflow sklearn flavor)
and for python models (the operator's own code, like pipeline steps, which run in the server anyway);
worker processes for everything whose native code nobody here vetted: ONNX (onnxruntime on a crafted
graph), MLflow pyfunc flavors, and anything registered with trust (or on a `--trust-pickle` server).
So with the default config a segfault in such a model costs its request (500), not the server.
`"thread"` and `"process"` force one. GET /v1/endpoints/{name} shows each version's resolved mode
(`isolation: [{model, version, mode}]`). Measured on the benchmark model (scikit-learn pipeline,
sequential requests, 2 loaded cores; benchmarks/serving/isolation_overhead.py): p50 4.5 ms (thread)
vs 4.9 ms (process) at 1 row, 4.8 vs 5.3 ms at 100 rows; a worker takes 2.7-5 s to start (spawn
and imports) and holds ~240 MB RSS. Hence not "process" for all: skops models, most endpoints,
keep the faster path and start no process.

**Threads (`isolation: "thread"`).** Every endpoint version's micro-batcher has a
`Lane`: at most `max_concurrent_calls + MAX_STALLED` daemon threads of its own, started on demand.
A model that hangs holds its own lane's threads and nothing else: other endpoints never queue
behind it (they used to share one pool of `model_threads` threads, so four hung models starved
every endpoint), and a hung thread never blocks the server's exit (a daemon thread is not joined).
A thread cannot be stopped, so a hung call runs on; once every slot of the lane is held by calls
older than the endpoint's `timeout_ms`, the batcher sheds new requests at once (503) instead of
letting each wait out its timeout.

**Processes (`isolation: "process"`).** The version runs in `max_concurrent_calls` worker processes
of its own (spawned, one call at a time each); the columns cross a pipe as pickled numpy arrays and
the DataFrame is built in the worker. A native crash (segfault, `abort()`) kills only the worker:
the requests of the call it was running get a 500 naming the crash, and the next call starts a fresh
worker (a worker that keeps crashing is restarted with backoff; meanwhile 503). A call that runs past
`timeout_ms` (its callers have all had their 504) kills its worker, so a hung model recovers too.
Workers die with the server: Linux's parent-death signal (SIGKILL), set in the worker before it
imports the model, plus a thread that checks the parent is still there; and nothing is spawned once
the data plane is closing. The cost: a process start (paid when the endpoint is applied), the
model's memory once more per worker, and ~0.4 ms plus a copy of the columns per call (above).
A rollout candidate that runs in processes is also warmed (its reference rows) in a worker of its
own. The server itself never loads such a version (`ModelCache.describe`): its schema and output
come from what registration stored, and registration loads and checks it in a throwaway process
(driftgate/one_shot.py), so a file that crashes on load fails its upload, not the server. A deploy
loads it in a worker first (the one the endpoint then keeps): one that crashes on load is refused.
Shadow copies (without the shadow process) and drift reports score it through its workers too.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from driftgate.serving.model_errors import ModelUnavailable, Scores, WorkerCrashed, WorkerHung
from driftgate.serving.workers import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    START_TIMEOUT_S,
    ProcessPool,
    ProcessWorker,
    Spawner,
    WorkerSpec,
)

__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "START_TIMEOUT_S",
    "Lane",
    "ModelUnavailable",
    "ProcessPool",
    "ProcessWorker",
    "Scores",
    "Spawner",
    "WorkerCrashed",
    "WorkerHung",
    "WorkerSpec",
]


class Lane(Executor):
    """A bounded executor of daemon threads, started on demand. The micro-batcher never has more
    calls in flight than `max_workers`, so work never waits here for a thread. After `shutdown`
    each thread ends once it finds no work (one in a hung call, when the call returns); work still
    submitted runs all the same (a retired batcher's last queued requests)."""

    def __init__(self, max_workers: int, name: str) -> None:
        self.max_workers = max_workers
        self.name = name
        self._work: collections.deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0
        self._retired = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            raise TypeError("Lane.submit takes positional arguments only")
        future: Future[Any] = Future()
        with self._cond:
            self._work.append((future, fn, args))
            if self._idle >= len(self._work):
                self._cond.notify()
            elif self._threads < self.max_workers:
                self._threads += 1
                name = f"driftgate-model-{self.name}-{self._threads}"
                threading.Thread(target=self._loop, name=name, daemon=True).start()
        return future

    @property
    def threads(self) -> int:
        return self._threads

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._work:
                    if self._retired:
                        self._threads -= 1
                        return
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                future, fn, args = self._work.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args

    def shutdown(self, wait: bool = False, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._retired = True
            self._cond.notify_all()
