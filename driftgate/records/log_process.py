"""The prediction log written by a child process, so encoding and inserts never take the serving GIL.

In the serving process a request still hands its `LogBatch` over in O(1). A sender thread ships
what has queued, every `flush_interval`, to one long-lived child (`driftgate.child.ChildProcess`)
that runs an ordinary `Recorder` over its own store connection: it redacts, encodes and writes the
rows, parks them in the spool while the store is down, and answers with its counters. Measured in
`benchmarks/serving/run.py`: the encoding (~3 us per row) and the SQLite insert (~5 us per row) in a
thread of the server took GIL slices from the event loop and added ~10 ms to the p99 at half load on
100-row requests.

What does not change for callers:
- the bound: batches queued here or in flight to the child count towards `max_rows`; past it a
  batch is dropped at hand-over and counted (`on_drop`), as before.
- nothing is lost when the child dies (the OOM killer, a crashing driver): a batch leaves the queue
  only once the child has answered for it, and is sent again to a fresh child otherwise (ids
  already stored are skipped, so a repeat is harmless).
- `flush()` returns once everything handed over before it is written (or parked in the spool);
  `close()` writes everything, then ends the child.
- `kill -9` of the server loses at most what was queued (~`flush_interval`).

The child runs with Linux's SCHED_BATCH at normal niceness: under saturation it gets a fair share of
a busy core and keeps up, and it never preempts a serving thread when it wakes. `--durable-log`
keeps the in-process recorder: an acknowledgement there waits for the spool's fsync in the
serving process itself.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftgate.child import ChildProcess
from driftgate.records.recorder import LogBatch, Recorder, describe_error

log = logging.getLogger("driftgate.recorder")

# A child that cannot take work (cannot start, keeps dying) is retried after this many seconds, at most.
MAX_BACKOFF_S = 5.0
# flush() waits this long for a child that does not answer, then gives up (the rows stay queued).
FLUSH_TIMEOUT_S = 60.0

# ---- the child ------------------------------------------------------------------------------------

_recorder: Recorder | None = None


def _start(data_dir: str, db: str | None, spool: str, batch_rows: int) -> None:
    """Runs once in the child: its own store connection and an ordinary recorder writing to it."""
    global _recorder
    # Ctrl-C reaches the whole process group; the server decides when the log is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from driftgate.store import Store

    store = Store.open(data_dir, db, migrate=False)  # the server migrated before starting this
    # The server bounds what is queued; here every batch handed over is written or parked.
    _recorder = Recorder(
        store.predictions.write_rows,
        flush_interval=3600.0,  # writes happen in `_write`, on the server's schedule
        batch_rows=batch_rows,
        max_rows=2**62,
        spool=Path(spool),
    )


def _counters(rec: Recorder) -> tuple[int, int, int, int]:
    return rec.written_rows, rec.dropped_rows, rec.spooled_rows, rec.replayed_rows


def _write(batches: list[LogBatch]) -> dict[str, Any]:
    """Write (or park) the batches; what changed in the counters, and the store's state."""
    rec = _recorder
    assert rec is not None, "the log writer was not started"
    before = _counters(rec)
    for batch in batches:
        rec.record(batch)
    rec.flush()  # never raises: rows the store refuses are parked in the spool
    after = _counters(rec)
    written, dropped, spooled, replayed = (a - b for a, b in zip(after, before, strict=True))
    return {
        "written": written,
        "dropped": dropped,
        "spooled": spooled,
        "replayed": replayed,
        "store_available": rec.store_available,
        "backlog_files": rec.backlog_files,
    }


def _shutdown() -> None:
    if _recorder is not None:
        _recorder.close()


# ---- the serving process's side ---------------------------------------------------------------


class ProcessRecorder:
    """`Recorder`'s interface (non-durable mode); the rows are written by a child process."""

    durable = False

    def __init__(
        self,
        *,
        data_dir: Path | str,
        db: str | None,
        spool: Path,
        flush_interval: float = 0.05,
        batch_rows: int = 5000,
        max_rows: int = 200_000,
        on_drop: Callable[[LogBatch], None] | None = None,
    ) -> None:
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.max_rows = max_rows
        self._on_drop = on_drop
        self._spool = spool
        self._child = ChildProcess(_start, (str(data_dir), db, str(spool), batch_rows), priority="batch")
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._outbox: deque[LogBatch] = deque()
        self._queued_rows = 0
        """Rows handed over and not yet answered for by the child (queued here or in flight)."""
        self._handed = 0  # batches handed over so far
        self._answered = 0  # batches the child has answered for (in hand-over order)
        self._flush_wanted = False
        self._wake = threading.Event()
        self._stop = False
        self._retry_at = 0.0
        self._backoff = 0.5
        self.dropped_rows = 0
        self.written_rows = 0
        self.spooled_rows = 0
        self.replayed_rows = 0
        self.store_available = True
        self.backlog_files = 0
        self._thread = threading.Thread(target=self._run, name="driftgate-log-sender", daemon=True)
        self._thread.start()

    # ---- what requests call ----------------------------------------------------------------------

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def record(self, batch: LogBatch) -> bool:
        """Hand a batch over without waiting. False when it was dropped (queue full)."""
        n = len(batch)
        with self._lock:
            dropped = self._stop or self._queued_rows + n > self.max_rows
            if dropped:
                self.dropped_rows += n
            else:
                self._outbox.append(batch)
                self._queued_rows += n
                self._handed += 1
        if dropped and self._on_drop:
            self._on_drop(batch)
        return not dropped

    async def record_durable(self, batch: LogBatch) -> None:
        """Not durable here (see the module docstring): the same as `record`."""
        self.record(batch)

    def flush(self) -> None:
        """Return once every batch handed over so far is written or parked (or after `FLUSH_TIMEOUT_S`
        with a child that does not answer). Also retries parked rows once if the store was down."""
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        with self._lock:
            target = self._handed
            if target == self._answered and not self._has_parked_work():
                return
            self._flush_wanted = True
            self._retry_at = 0.0
            self._wake.set()
            while (self._answered < target or self._flush_wanted) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("prediction log flush timed out; %d rows still queued", self._queued_rows)
                    return
                self._done.wait(min(left, 0.5))

    def close(self) -> None:
        """Write everything handed over (SIGTERM path), then end the child."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=FLUSH_TIMEOUT_S)
        if self._child.started:
            with contextlib.suppress(Exception):
                self._child.call(_shutdown)
        self._child.close()

    def processes(self) -> list[Any]:
        """The writer child's process, once started (for tests)."""
        return self._child.processes()

    # ---- the sender thread -------------------------------------------------------------------

    def _has_parked_work(self) -> bool:
        """Something for the child even with nothing queued: parked rows, or spool files a previous
        process left behind (a crash) that the child adopts when it starts."""
        if self._child.started:
            return self.backlog_files > 0 or not self.store_available
        return self._spool.is_dir() and any(self._spool.glob("*/seg-*"))

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._lock:
                stopping = self._stop
                flush = self._flush_wanted
                batches = list(self._outbox)
                upto = self._answered + len(batches)
            if time.monotonic() < self._retry_at and not stopping:
                continue
            if batches or flush or (self._has_parked_work() and self._child.started):
                self._send(batches, upto)
            with self._lock:
                if flush and self._answered == upto:
                    self._flush_wanted = False
                self._done.notify_all()
                if stopping and not self._outbox:
                    return
                if stopping and time.monotonic() < self._retry_at:
                    # Closing with a child that cannot take the rows: they are lost, and counted.
                    lost = self._queued_rows
                    self.dropped_rows += lost
                    log.error("prediction log writer unavailable at shutdown: %d rows lost", lost)
                    return

    def _send(self, batches: list[LogBatch], upto: int) -> None:
        try:
            stats = self._child.call(_write, batches)
        except Exception as exc:  # the child cannot start or died twice: keep the rows, try later
            log.error("prediction log writer failed (%s); retrying in %.1f s", describe_error(exc), self._backoff)
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
            return
        self._backoff = 0.5
        rows = sum(len(b) for b in batches)
        with self._lock:
            for _ in batches:
                self._outbox.popleft()
            self._queued_rows -= rows
            self._answered = upto
            self.written_rows += stats["written"]
            self.dropped_rows += stats["dropped"]
            self.spooled_rows += stats["spooled"]
            self.replayed_rows += stats["replayed"]
            self.store_available = stats["store_available"]
            self.backlog_files = stats["backlog_files"]
