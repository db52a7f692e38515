"""The prediction log written by a child process, so that encoding and inserts stay off the serving
process: its GIL, and its CPU whenever the machine has CPU to spare.

A request still hands its `LogBatch` over in O(1). A sender thread ships what has queued, every
`flush_interval` or as soon as `batch_rows` rows wait, to one long-lived child
(`driftgate.child.ChildProcess`) that runs an ordinary `Recorder` over its own store connection: it
redacts, encodes and writes the rows, parks them in the spool while the store is down, and answers
with its counters.

The child runs at idle CPU priority (Linux SCHED_IDLE): a serving thread that wakes preempts it at
once. Measured with `benchmarks/serving/` on one core at half load, 100-row requests: p99 13.6-16 ms,
against 13.2-13.6 ms with logging off, 16-24 ms with the log written by a thread of the server (its
GIL slices and CPU bursts land between a request's steps) and 29-50 ms with the child at normal
priority (SCHED_BATCH: it keeps its time slice when a request arrives).

On a saturated core an idle-priority child gets no CPU. Once a call to it has run `STALLED_CALL_S`
(or `max_behind_rows` rows wait for it), what it holds and new batches go to `overflow`, an in-process
`Recorder`, which competes for the CPU as the log always did: every prediction is still logged, at the
throughput of in-process logging, unless `overflow`'s own queue fills too, and then rows are dropped
and counted, as always. With a spare core the child keeps up and overflow stays unused (not measured:
the benchmark uses one core). Saturation throughput therefore includes writing the log in-process: a
short benchmark run used to end with the run's rows still waiting for the child, written after it
(docs/benchmarks.md, "Before and after issue 20"), and held in memory past SPEC 5's kill -9 bound.

What does not change for callers:
- the bound: the in-process recorder's `max_rows`; past it a batch is dropped and counted.
- nothing is lost when the child dies (the OOM killer, a crashing driver): a batch leaves the child's
  queue only once the child has answered for it, and is sent again to a fresh child, or written
  in-process if that fails too (ids already stored are skipped, so a repeat is harmless).
- `flush()` returns once everything handed over before it is written (or parked in the spool);
  `close()` writes everything, then ends the child.
- `kill -9` of the server loses at most what was queued: rows of at most ~`STALLED_CALL_S` +
  `flush_interval` (1.5 s by default), however starved the child is.
- spool files a crashed server left behind are adopted and replayed by the in-process recorder.

Why 0.5 s and not the in-process writer's 0.05 s: a hand-over has a fixed cost on both sides (the
sender, the pool's feeder and result threads each take the server's GIL; the child opens a transaction
and commits) whatever its rows. At low traffic every hand-over carries a request or two, so that cost is
per request: measured with 1-row requests at 34 req/s on one core, the child used 0.36-0.40 s of CPU per
17 s run at 0.05 s, 0.05-0.07 s at 0.5 s. Size bounds a hand-over at high traffic instead (`batch_rows`),
so a call stays short.

`--durable-log` keeps the in-process recorder alone: an acknowledgement there waits for the spool's
fsync in the serving process itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from driftgate.child import ChildProcess
from driftgate.core.rows import merge
from driftgate.records.recorder import Admission, LogBatch, Recorder, describe_error

log = logging.getLogger("driftgate.recorder")

# A child that cannot take work (cannot start, keeps dying) is retried after this many seconds, at most.
MAX_BACKOFF_S = 5.0
# flush() waits this long for the child, then writes what it holds in-process: on a saturated core
# the idle-priority child gets no CPU, and a caller (feedback for a just-made prediction) must not wait.
FLUSH_PATIENCE_S = 1.0
# A call to the child running longer than this means the child is starved (an idle-priority process on a
# saturated machine): new batches, and those waiting behind the call, go to the in-process recorder. The
# rows a `kill -9` of the server can lose are those waiting here, so this bounds their age (with a stalled
# child they used to wait for seconds: rows acked 3.6 s before a kill were lost at load 15).
STALLED_CALL_S = 1.0
# close() waits this long for the sender thread's last hand-over.
CLOSE_TIMEOUT_S = 60.0

# ---- the child ------------------------------------------------------------------------------------

_recorder: Recorder | None = None


def _start(data_dir: str, db: str | None, spool: str, batch_rows: int) -> None:
    """Runs once in the child: its own store connection and an ordinary recorder writing to it."""
    global _recorder
    # Ctrl-C and SIGTERM to the process group are ignored here (driftgate.child): the server decides
    # when the log is done, and the child ends with the server (kill -9 included).
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


def _ready() -> None:
    """Nothing: a first call that starts the child (its initializer) before traffic arrives."""


def _shutdown() -> None:
    if _recorder is not None:
        _recorder.close()


# ---- the serving process's side ---------------------------------------------------------------


class ProcessRecorder:
    """`Recorder`'s interface (non-durable mode); rows are written by an idle-priority child, or by
    `overflow` (an in-process `Recorder`) while the child is behind or unavailable."""

    durable = False

    def __init__(
        self,
        overflow: Recorder,
        *,
        data_dir: Path | str,
        db: str | None,
        spool: Path,
        flush_interval: float = 0.5,
        batch_rows: int = 5000,
        max_behind_rows: int | None = None,
        stalled_call_s: float = STALLED_CALL_S,
    ) -> None:
        """`max_behind_rows` (default `10 * batch_rows`): rows waiting for the child past which new batches
        go to `overflow` instead. `overflow` also adopts and replays what a crashed server left in the
        spool, and its `max_rows` bounds what it queues."""
        self.overflow = overflow
        self.flush_interval = flush_interval
        self._call_rows = 4 * batch_rows
        self._ship_rows = batch_rows  # this many rows waiting start a hand-over before the interval ends
        # Room for seconds of traffic: the child also shares idle CPU with other idle work (a monitor
        # run over the last minute in the drift worker), and a short wait is cheaper than overflow.
        behind = 10 * batch_rows if max_behind_rows is None else max_behind_rows
        self.max_behind_rows = min(behind, overflow.max_rows)  # the overall bound holds here too
        self._child = ChildProcess(_start, (str(data_dir), db, str(spool), batch_rows), priority="idle")
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._outbox: deque[LogBatch] = deque()
        self._behind_rows = 0
        """Rows handed to the child's side and not yet answered for (queued here or in flight)."""
        self._handed = 0  # batches handed to the child's side so far
        self._answered = 0  # batches the child has answered for (in hand-over order)
        self._flush_wanted = False
        self._generation = 0  # moves when a flush takes over what the child holds
        self._wake = threading.Event()
        self._call_started: float | None = None  # when the call in flight to the child began
        self.stalled_call_s = stalled_call_s
        self._stop = False
        self._retry_at = 0.0
        self._backoff = 0.5
        self.overflowed_rows = 0
        """Rows written in-process because the child was behind (a saturated core) or unavailable."""
        self._child_stats = {"written": 0, "dropped": 0, "spooled": 0, "replayed": 0}
        self._child_store_available = True
        self._child_backlog_files = 0
        self._thread = threading.Thread(target=self._run, name="driftgate-log-sender", daemon=True)
        self._thread.start()

    # ---- counters: both writers together ------------------------------------------------------

    @property
    def queued_rows(self) -> int:
        return self._behind_rows + self.overflow.queued_rows

    @property
    def backlog_files(self) -> int:
        return self._child_backlog_files + self.overflow.backlog_files

    @property
    def store_available(self) -> bool:
        return self._child_store_available and self.overflow.store_available

    @property
    def written_rows(self) -> int:
        return self._child_stats["written"] + self.overflow.written_rows

    @property
    def dropped_rows(self) -> int:
        return self._child_stats["dropped"] + self.overflow.dropped_rows

    @property
    def spooled_rows(self) -> int:
        return self._child_stats["spooled"] + self.overflow.spooled_rows

    @property
    def replayed_rows(self) -> int:
        return self._child_stats["replayed"] + self.overflow.replayed_rows

    # ---- what requests call ----------------------------------------------------------------------

    def record(self, batch: LogBatch) -> bool:
        """Hand a batch over without waiting. False when it was dropped (queue full)."""
        n = len(batch)
        with self._lock:
            started = self._call_started
            if started is not None and time.monotonic() - started > self.stalled_call_s:
                if self._outbox:
                    self._take_over()  # what waits behind the stalled call is written in-process too
                return self._to_overflow(batch)
            if not self._stop and self._behind_rows + n <= self.max_behind_rows:
                self._outbox.append(batch)
                self._behind_rows += n
                self._handed += 1
                if self._behind_rows >= self._ship_rows > self._behind_rows - n:
                    self._wake.set()  # enough for a call of its own: no need to wait out the interval
                return True
            return self._to_overflow(batch)

    async def record_durable(self, batch: LogBatch) -> None:
        """Not durable here (see the module docstring): the same as `record`."""
        self.record(batch)

    # ---- admission (SPEC 5: no id for a row that will not be stored) ---------------------------

    @property
    def capacity_rows(self) -> float:
        return self.overflow.capacity_rows

    def admit(self, rows: int) -> Admission | None:
        """Room for a request's rows is held in `overflow`, where a batch goes when the child is behind
        and the only place rows are dropped; a batch the child takes leaves it unused (given back when
        the request ends). What the child held is taken back by `overflow` past its bound, never dropped."""
        return None if self._stop else self.overflow.admit(rows)

    def start(self) -> None:
        """Start the child now, in the background, so that it is ready when traffic comes (it starts
        at idle priority: under load that could take seconds, with batches overflowing meanwhile)."""
        self._child.submit(_ready)

    def flush(self) -> None:
        """Return once every batch handed over so far is written or parked. The child gets
        `FLUSH_PATIENCE_S`; then what it still holds is written in-process. Also retries parked rows once."""
        deadline = time.monotonic() + FLUSH_PATIENCE_S
        with self._lock:
            target = self._handed
            if target > self._answered or self._child_backlog_files or not self._child_store_available:
                self._flush_wanted = True
                self._retry_at = 0.0
                self._wake.set()
                while (self._answered < target or self._flush_wanted) and self._thread.is_alive():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._take_over()
                        break
                    self._done.wait(min(left, 0.1))
        self.overflow.flush()

    def _take_over(self) -> None:
        """Hand everything the child holds to the in-process recorder (the caller holds `_lock`, so a
        concurrent flush finds the batches there). A call in flight may still write its part: ids
        already stored are skipped, so nothing is doubled."""
        log.info("prediction log writer busy; %d rows written in-process", self._behind_rows)
        for batch in self._outbox:
            self._to_overflow(batch, accepted=True)
        self._outbox.clear()
        self._behind_rows = 0
        self._answered = self._handed
        self._generation += 1  # the call in flight, if any, must not pop what it no longer owns
        self._flush_wanted = False

    def close(self) -> None:
        """Write everything handed over (SIGTERM path), then end the child. No writer starts from here
        on: if the child dies now, what it held is written in-process (a replacement spawned during
        shutdown used to outlive the server)."""
        self._child.stop_respawning()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=CLOSE_TIMEOUT_S)
        if self._child.started:
            with contextlib.suppress(Exception):
                self._child.call(_shutdown)
        self._child.close()
        self.overflow.close()

    def processes(self) -> list[Any]:
        """The writer child's process, once started (for tests)."""
        return self._child.processes()

    # ---- the sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._lock:
                stopping = self._stop
                flush = self._flush_wanted
                batches = self._next_call()
                upto = self._answered + len(batches)
                generation = self._generation
            parked = self._child.started and (self._child_backlog_files or not self._child_store_available)
            if (batches or flush or parked) and (stopping or flush or time.monotonic() >= self._retry_at):
                self._send(batches, upto, generation)
            with self._lock:
                if flush and self._answered == upto:
                    self._flush_wanted = False
                self._done.notify_all()
                if stopping and not self._outbox:
                    return
                if len(self._outbox) > len(batches):
                    self._wake.set()  # a backlog: the next call at once

    def _next_call(self) -> list[LogBatch]:
        """The oldest batches, up to `4 * batch_rows` rows: what one call carries (the caller holds
        `_lock`). Bounded so that preparing a call never holds the GIL for long."""
        taken: list[LogBatch] = []
        rows = 0
        for batch in self._outbox:
            if taken and rows + len(batch) > self._call_rows:
                break
            taken.append(batch)
            rows += len(batch)
        return taken

    def _send(self, batches: list[LogBatch], upto: int, generation: int) -> None:
        """Give the batches to the child; if it cannot take them (it cannot start, or died twice), they
        go to the in-process recorder and the child gets a rest before the next try."""
        self._call_started = time.monotonic()
        try:
            stats = self._child.call(_write, merge(batches))
        except Exception as exc:
            log.error("prediction log writer process failed (%s); writing in-process", describe_error(exc))
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
            stats = None
        else:
            self._backoff = 0.5
        finally:
            self._call_started = None
        with self._lock:
            if generation != self._generation:  # a flush took these over meanwhile
                if stats is not None:
                    self._count(stats, written=False)  # written by the in-process recorder too
                return
            if stats is None:
                # Not lost: the in-process recorder writes them (or parks them in the spool); handed
                # over before they count as answered, so a flush waiting for them then writes them.
                for batch in batches:
                    self._to_overflow(batch, accepted=True)
            else:
                self._count(stats)
            for _ in batches:
                self._outbox.popleft()
            self._behind_rows -= sum(len(b) for b in batches)
            self._answered = upto

    def _to_overflow(self, batch: LogBatch, *, accepted: bool = False) -> bool:
        """Give a batch to the in-process recorder and count it (the caller holds `_lock`, which also
        keeps `overflowed_rows` exact across the request and sender threads). `accepted`: the batch was
        in the child's queue, so its ids are out: queued past the bound rather than dropped."""
        self.overflowed_rows += len(batch)
        if accepted:
            self.overflow.take_back(batch)
            return True
        return self.overflow.record(batch)

    def _count(self, stats: dict[str, Any], *, written: bool = True) -> None:
        """Add a call's answer to the counters (the caller holds `_lock`)."""
        for key in self._child_stats:
            if key != "written" or written:
                self._child_stats[key] += stats[key]
        self._child_store_available = stats["store_available"]
        self._child_backlog_files = stats["backlog_files"]
