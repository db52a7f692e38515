"""Big drift reports in a separate process, so that they never take the serving process's GIL.

A report over a large window (say `?last=1000000`) reads every row through SQLAlchemy, decodes its
JSON and builds pandas frames: tens of seconds of pure-Python work. In a thread of the serving
process that work holds the GIL for 5 ms slices, and every request waits for slices in turn:
`benchmarks/monitoring/p99_during_drift.py` measured the predict p99 at 2-3x its quiet value while
such a report ran. Here the same `LiveDrift.report` runs in one long-lived child process (its own
store connection, model cache and reference cache) started on first use with a lower CPU priority
(`nice` 19, the lowest), so on a busy machine serving wins the CPU and on an idle core the report runs at full
speed. Small windows (`last` up to `in_process_rows`, the default 5,000-row window included) still
run in the calling thread: a process round trip would cost more than it saves.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from driftgate import errors
from driftgate.monitoring.live import LiveDrift
from driftgate.rollout.policy import VersionRef
from driftgate.serving.runtime import LoadedVersion

IN_PROCESS_ROWS = 100_000
NICENESS = 19


class DriftWorker:
    """`report(...)` with `LiveDrift.report`'s signature; windows above `in_process_rows` (or a
    `since`/`until` window of unknown size) go to the child process."""

    def __init__(
        self,
        live: LiveDrift,
        *,
        data_dir: Path,
        db: str | None,
        trust_pickle: bool = False,
        in_process_rows: int | None = None,
    ) -> None:
        self.live = live
        self._args = (str(data_dir), db, trust_pickle)
        self.in_process_rows = IN_PROCESS_ROWS if in_process_rows is None else in_process_rows
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def report(
        self,
        endpoint: str,
        version: LoadedVersion,
        *,
        last: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, Any]:
        window = {"last": last, "since": since, "until": until}
        if (last is None and since is None) or (last is not None and last <= self.in_process_rows):
            return self.live.report(endpoint, version, **window)
        try:
            ok, body = self._submit(endpoint, version.ref, window)
        except BrokenProcessPool:  # the child died (OOM killer, say): one fresh try
            self._reset()
            ok, body = self._submit(endpoint, version.ref, window)
        if not ok:
            cls = getattr(errors, body["type"], errors.DriftgateError)
            raise cls(body["message"], **body["details"])
        self.live.latest[endpoint] = body
        return body

    def _submit(self, endpoint: str, ref: VersionRef, window: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),  # the server has threads: never fork
                    initializer=_start,
                    initargs=self._args,
                )
            pool = self._pool
        return pool.submit(_report, endpoint, ref.model, ref.version, window).result()

    def _reset(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            # A report may be half-way through a million rows: end the child rather than wait for
            # it (the interpreter's exit would otherwise join the pool and hold up a SIGTERM).
            children = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for child in children:
                child.terminate()
            # Polled, not joined: after the pool's shutdown a child's sentinel may already be closed,
            # which makes join() return at once. A child that ignores SIGTERM for 5 s gets SIGKILL.
            deadline = time.monotonic() + 5
            while any(c.is_alive() for c in children) and time.monotonic() < deadline:
                time.sleep(0.05)
            for child in children:
                if child.is_alive():
                    child.kill()

    def close(self) -> None:
        self._reset()


# ---- the child process ----------------------------------------------------------------------------

_child: tuple[LiveDrift, Any] | None = None


def _start(data_dir: str, db: str | None, trust_pickle: bool) -> None:
    global _child
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    from driftgate.serving.runtime import ModelCache
    from driftgate.store import Store

    store = Store.open(Path(data_dir), db)
    _child = (LiveDrift(store), ModelCache(store, trust_pickle=trust_pickle))


def _report(endpoint: str, model: str, version: int, window: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    assert _child is not None
    live, cache = _child
    try:
        return True, live.report(endpoint, cache.get(VersionRef(model, version)), **window)
    except errors.DriftgateError as exc:  # custom exception kwargs do not survive pickling
        return False, {"type": type(exc).__name__, "message": exc.message, "details": exc.details}
