"""The recorder: prediction log rows written in batches by a background thread, off the request path.

A request hands over one `LogBatch` (its frame, outputs and ids) in O(1). How it becomes safe is the
recorder's durability strategy (`driftgate.records.durability`), chosen when it is made: written
behind from a bounded in-memory queue (default), or fsynced to the spool before the request is
answered (`durable=True`, group commit). Either way the writer thread encodes (and redacts) queued
batches and writes them in one transaction every `flush_interval` seconds or every `batch_rows`
rows; rows the store refuses are parked in the spool and replayed, with backoff, until the store
takes them again (`driftgate.records.backlog`). `close()` (SIGTERM) writes everything.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from driftgate.core.rows import LogBatch, Row, count_rows, merge
from driftgate.records.admission import Admission, take_admitted
from driftgate.records.backlog import REPLAY_FILES, Backlog, RowWriter, describe_error
from driftgate.records.durability import Durability, GroupCommit, WriteBehind
from driftgate.records.media import encode_batch as encode  # tensors described and sampled first
from driftgate.records.spool import Segment, Spool

log = logging.getLogger("driftgate.recorder")

__all__ = ["REPLAY_FILES", "Admission", "LogBatch", "PredictionLog", "Recorder", "RowWriter", "describe_error"]


class PredictionLog(Protocol):
    """What the server needs of a prediction log: `Recorder` (in-process, durable mode too) or
    `driftgate.records.log_process.ProcessRecorder` (written by a child process). Its counters are
    read-only here: each implementation keeps its own (ProcessRecorder sums the child's and its own)."""

    @property
    def durable(self) -> bool: ...

    @property
    def dropped_rows(self) -> int: ...

    @property
    def written_rows(self) -> int: ...

    @property
    def spooled_rows(self) -> int: ...

    @property
    def replayed_rows(self) -> int: ...

    @property
    def store_available(self) -> bool: ...

    @property
    def queued_rows(self) -> int: ...

    @property
    def backlog_files(self) -> int: ...

    def record(self, batch: LogBatch) -> bool: ...

    async def record_durable(self, batch: LogBatch) -> None: ...

    @property
    def capacity_rows(self) -> float: ...

    def admit(self, rows: int) -> Admission | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Recorder:
    """Bounded queue + writer thread, made durable by its strategy (group commit to the spool).

    >>> rows = []
    >>> rec = Recorder(lambda batch, replay=False: rows.extend(batch), flush_interval=0.05)
    >>> rec.record(LogBatch("ep", "m", 1, "primary", 0.0, ["a"], None, [1], None, 1.0, "ok"))
    True
    >>> rec.close(); [r[0] for r in rows]
    ['a']
    """

    def __init__(
        self,
        write: RowWriter | Callable[..., None],
        *,
        flush_interval: float = 0.2,
        batch_rows: int = 5000,
        max_rows: int = 200_000,
        on_drop: Callable[[LogBatch], None] | None = None,
        spool: Spool | Path | None = None,
        durable: bool = False,
        segment_seconds: float = 1.0,
        segment_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        """`durable` (with a spool) chooses `GroupCommit`, otherwise `WriteBehind`; `segment_*` bound a
        group-commit spool file's age and size."""
        self._write = write
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.max_rows = max_rows
        self._on_drop = on_drop
        self.spool = Spool(spool) if isinstance(spool, Path) else spool
        # The store queue: (LogBatch | encoded rows, the spool segment holding them or None).
        self._queue: deque[tuple[LogBatch | list[Row], Segment | None]] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._db_lock = threading.RLock()
        self.spool_lock = threading.Lock()
        self._wake = threading.Event()
        self.closed = False
        self._backlog = Backlog(self.spool, batch_rows)
        self._reserved = 0  # rows admitted (`admit`) and not yet queued or given back
        self.dropped_rows = 0
        self.written_rows = 0
        self._durability: Durability = (
            GroupCommit(self, self.spool, segment_seconds=segment_seconds, segment_bytes=segment_bytes)
            if durable and self.spool is not None
            else WriteBehind(self)
        )
        self._thread = threading.Thread(target=self._run, name="driftgate-recorder", daemon=True)
        self._thread.start()

    # ---- what requests call ----------------------------------------------------------------------

    @property
    def durable(self) -> bool:
        return self._durability.durable

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def backlog_files(self) -> int:
        return len(self._backlog)

    @property
    def store_available(self) -> bool:
        return self._backlog.store_available

    @property
    def spooled_rows(self) -> int:
        """Rows parked in spool files because the store refused them (not counting durable appends)."""
        return self._backlog.spooled_rows

    @property
    def replayed_rows(self) -> int:
        return self._backlog.replayed_rows

    @property
    def capacity_rows(self) -> float:
        """The most rows one request can be admitted with (durable: no bound, rows wait on disk)."""
        return self._durability.capacity_rows

    def record(self, batch: LogBatch) -> bool:
        """Hand a batch over without waiting. False when it was dropped (queue full)."""
        return self._durability.record(batch)

    async def record_durable(self, batch: LogBatch) -> None:
        """Return once the batch is as safe as the strategy makes it: fsynced to the spool (durable;
        raises `NotReady` when the spool cannot be written), queued (otherwise)."""
        await self._durability.record_durable(batch)

    def admit(self, rows: int) -> Admission | None:
        """Hold queue room for a request's `rows` before it is scored, or None when the log cannot
        take them now (the caller refuses the request: 503 with Retry-After)."""
        return self._durability.admit(rows)

    def take_back(self, batch: LogBatch) -> None:
        """Queue a batch that was already accepted elsewhere (the writer process's queue) even past the
        bound: its ids were handed out. Memory stays bounded by both queues' bounds together."""
        with self._lock:
            self._queue.append((batch, None))
            self._queued_rows += len(batch)
        if self._queued_rows >= self.batch_rows:
            self._wake.set()

    def flush(self) -> None:
        """Write everything handed over so far, in the caller's thread (feedback, shutdown, tests).

        Also retries parked rows once if the store was down. Never raises: rows the store refuses
        are parked in the spool.
        """
        self._durability.settle()
        with self._db_lock:
            if self._backlog.waiting:
                self._backlog.replay(self._write)
            while self._drain_once():
                pass

    def close(self) -> None:
        """Stop taking work after writing everything (SIGTERM path). Rows the store refuses stay spooled."""
        self.closed = True
        self._durability.stop()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
        if self.spool is not None:
            with self.spool_lock:
                seg = self.spool.seal()
                if seg is not None:
                    self.settle_segment(seg)
            self.spool.close()

    # ---- what the durability strategies call -------------------------------------------------------

    def queue_batch(self, batch: LogBatch) -> bool:
        """Queue a batch within the bound (or the room its request was admitted with); False: dropped."""
        with self._lock:
            admitted = take_admitted(len(batch))
            if admitted:  # its room was held since admission: queued whatever the bound says now
                self._reserved -= len(batch)
            # A closed recorder writes nothing more: a batch handed over now is lost, so counted.
            # Room held for admitted requests is not free for others (shadows, failed requests).
            dropped = self.closed or (not admitted and self._queued_rows + self._reserved + len(batch) > self.max_rows)
            if dropped:
                self.dropped_rows += len(batch)
            else:
                self._queue.append((batch, None))
                self._queued_rows += len(batch)
        if dropped and self._on_drop:
            self._on_drop(batch)
        if self._queued_rows >= self.batch_rows:
            self._wake.set()
        return not dropped

    def reserve(self, rows: int) -> Admission | None:
        """Room in the bounded queue held for a request's rows, or None when there is none."""
        with self._lock:
            if self.closed or self._queued_rows + self._reserved + rows > self.max_rows:
                return None
            self._reserved += rows
        return Admission(rows, self._unreserve)

    def _unreserve(self, rows: int) -> None:
        with self._lock:
            self._reserved -= rows

    def hold(self, seg: Segment, n: int) -> None:
        """`n` rows appended to `seg` are in flight: it stays until the store has them."""
        with self._lock:
            seg.pending += n

    def queue_rows(self, rows: list[Row], seg: Segment | None, n: int) -> None:
        """Queue encoded rows (held by `seg` on disk, or by nothing when the spool failed)."""
        with self._lock:
            # On disk now, so never dropped: past the bound, the file is the only copy.
            if seg is not None and self._queued_rows + n > self.max_rows:
                seg.pending -= n
                seg.failed = True
            else:
                self._queue.append((rows, seg))
                self._queued_rows += n
        if self._queued_rows >= self.batch_rows:
            self._wake.set()

    def settle_segment(self, seg: Segment) -> None:
        """A sealed segment with nothing in flight is removed, or queued for replay if a write failed."""
        with self._lock:
            if not seg.sealed or seg.pending > 0:
                return
            if seg.failed:
                self._backlog.add(seg.path)
                return
        self.spool.remove(seg.path) if self.spool else None

    # ---- writing to the store ---------------------------------------------------------------------

    def _take(self) -> list[tuple[LogBatch | list[Row], Segment | None]]:
        taken: list[tuple[LogBatch | list[Row], Segment | None]] = []
        rows = 0
        with self._lock:
            # A deep queue is written in bigger transactions (fewer commits, same latency).
            while self._queue and rows < self.batch_rows * 4:
                item = self._queue.popleft()
                taken.append(item)
                rows += len(item[0]) if isinstance(item[0], LogBatch) else count_rows(item[0])
            self._queued_rows -= rows
        return taken

    def _rows_of(self, payload: LogBatch | list[Row]) -> list[Row]:
        if not isinstance(payload, LogBatch):
            return payload
        try:
            return encode(payload)
        except Exception as exc:  # a bug must cost one batch, not the thread
            log.error("prediction log rows of %s could not be encoded: %s", payload.endpoint, describe_error(exc))
            self.dropped_rows += len(payload)
            return []

    def _encoded(
        self, taken: list[tuple[LogBatch | list[Row], Segment | None]]
    ) -> list[tuple[list[Row], Segment | None]]:
        """Each item's rows. Consecutive batches of one segment are merged first (`rows.merge`): a
        1-row request's batch (20 features) costs ~22 us to encode alone, ~16 us merged in a run of
        hundreds (the merge included)."""
        out: list[tuple[list[Row], Segment | None]] = []
        for (is_batch, _), group in itertools.groupby(
            taken, key=lambda item: (isinstance(item[0], LogBatch), id(item[1]))
        ):
            items = list(group)
            seg = items[0][1]
            if not is_batch or len(items) == 1:
                out.extend((self._rows_of(payload), seg) for payload, _ in items)
                continue
            parts = [payload for payload, _ in items if isinstance(payload, LogBatch)]
            try:
                rows = [row for batch in merge(parts) for row in encode(batch)]
            except Exception:  # encode the parts one by one, so a bad one costs only itself
                rows = [row for part in parts for row in self._rows_of(part)]
            out.append((rows, seg))
        return out

    def _drain_once(self) -> bool:
        taken = self._take()
        if not taken:
            return False
        encoded = self._encoded(taken)
        rows = [row for item, _ in encoded for row in item]
        written = not rows
        if rows and self.store_available:
            try:
                self._write(rows)
                written = True
                self.written_rows += count_rows(rows)
            except Exception as exc:
                self._backlog.store_down(exc, count_rows(rows))
        if not written:
            # Durable rows are in the spool already; the rest are parked there now.
            self.dropped_rows += self._backlog.park([row for item, seg in encoded if seg is None for row in item])
        self._release(encoded, failed=not written)
        return True

    def _release(self, encoded: list[tuple[list[Row], Segment | None]], *, failed: bool) -> None:
        segments: dict[Segment, int] = {}
        for item, seg in encoded:
            if seg is not None:
                segments[seg] = segments.get(seg, 0) + count_rows(item)
        for seg, n in segments.items():
            with self._lock:
                seg.pending -= n
                seg.failed = seg.failed or failed
            if failed and self.spool is not None:
                with self.spool_lock:  # a failed segment must be sealed before it can be replayed
                    if self.spool.active is seg:
                        self.spool.seal()
            self.settle_segment(seg)

    def _run(self) -> None:
        while not self.closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                with self._db_lock:
                    if self._backlog.due:
                        self._backlog.replay(self._write)
                    while self._drain_once() and not self.closed:
                        pass
            except Exception as exc:  # keep the writer alive whatever happens
                log.error("prediction log writer: %s", describe_error(exc))
