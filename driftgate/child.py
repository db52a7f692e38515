"""One long-lived helper process at low CPU priority, started on first use, replaced if it dies.

Work that must not take the serving process's GIL (big drift reports, shadow scoring) runs here:
a spawned child (the server has threads: never fork) with its own store connection, set up by an
`initializer` in the child. Its CPU priority drops before it imports anything, so on a busy core
serving wins and on an idle one the child runs at full speed: the parent lowers it the moment the
process exists (a spawned child first re-imports the parent's main module, and unpickling an
initializer imports its module: ~1-2 s of imports that, at normal priority, raised the serving
benchmark's half-load p99 from 6 to 27 ms while the monitor's child started), and the child lowers
itself again before it runs the initializer, which it imports by name.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

Priority = Literal["nice", "idle"]
NICENESS = 19
KILL_AFTER_S = 5.0


def lower_priority(priority: Priority, pid: int = 0) -> None:
    """`nice`: the lowest niceness, so a busy core still gives the child a small share.
    `idle`: also Linux's SCHED_IDLE: a serving thread that wakes up preempts the child at once,
    where a nice-19 task may first finish its time slice (EEVDF), a few ms added to a request.
    `pid` 0 is this process."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, pid, NICENESS)
    if priority == "idle":
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def _boot(priority: Priority, initializer: str, args: tuple[Any, ...]) -> None:
    lower_priority(priority)
    module, _, qualname = initializer.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):  # a qualified name: `Class.method` as well as `function`
        target = getattr(target, part)
    target(*args)


class ChildProcess:
    """`submit(fn, *args)` runs a module-level `fn` in the child; `call` waits for its result and
    retries once on a fresh child if the old one died (the OOM killer, a crashing native library)."""

    def __init__(self, initializer: Callable[..., None], args: tuple[Any, ...], priority: Priority = "nice") -> None:
        # By name: a function pickled by reference would import its module before `_boot` runs.
        self._boot_args = (priority, f"{initializer.__module__}:{initializer.__qualname__}", args)
        self._priority = priority
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            created = self._pool is None
            if created:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_boot,
                    initargs=self._boot_args,
                )
            pool = self._pool
            future = pool.submit(fn, *args)  # a spawning pool starts its one process here
            if created:  # a process that dies breaks the pool, so a new process means a new pool
                for process in (getattr(pool, "_processes", None) or {}).values():
                    lower_priority(self._priority, process.pid)
        return future

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return self.submit(fn, *args).result()
        except BrokenProcessPool:
            self.reset()
            return self.submit(fn, *args).result()

    @property
    def started(self) -> bool:
        return self._pool is not None

    def processes(self) -> list[Any]:
        """The live child's `multiprocessing.Process` (none before first use or after `reset`)."""
        with self._lock:
            pool = self._pool
        return list((getattr(pool, "_processes", None) or {}).values()) if pool is not None else []

    def reset(self) -> None:
        """End the child now (it may be half-way through a long job) and start afresh on next use."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        children = list((getattr(pool, "_processes", None) or {}).values())  # before shutdown() clears it
        pool.shutdown(wait=False, cancel_futures=True)
        for child in children:
            child.terminate()
        # Polled, not joined: after the pool's shutdown a child's sentinel may already be closed,
        # which makes join() return at once. A child that ignores SIGTERM gets SIGKILL.
        deadline = time.monotonic() + KILL_AFTER_S
        while any(c.is_alive() for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in children:
            if child.is_alive():
                child.kill()

    close = reset
