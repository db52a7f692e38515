"""How a batch handed to the `Recorder` becomes safe: the strategy chosen when the recorder is made.

- `WriteBehind` (the default): the batch waits in the recorder's bounded in-memory queue and is
  written with others every `flush_interval`; a full queue drops it (counted). `kill -9` loses at
  most what was queued; the spool holds only rows the store refused.
- `GroupCommit` (`--durable-log`): `await record_durable(batch)` returns once the batch's rows are
  fsynced to the spool. A committer thread encodes all waiting batches, appends them in one write and
  fsyncs once for all of them, then hands the rows to the same queue. Nothing acknowledged is lost;
  files left by a crash are replayed on start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from driftgate.core.rows import LogBatch, Row, count_rows
from driftgate.errors import NotReady
from driftgate.records.admission import Admission
from driftgate.records.backlog import describe_error
from driftgate.records.media import encode_batch as encode  # tensors described and sampled first
from driftgate.records.spool import Segment, Spool

if TYPE_CHECKING:
    from driftgate.records.recorder import Recorder

log = logging.getLogger("driftgate.recorder")
Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]


class Durability(Protocol):
    """What the recorder asks of its strategy: taking a batch, admitting a request, and settling
    (everything handed over is where the writer finds it) before a flush or close."""

    durable: bool
    capacity_rows: float

    def record(self, batch: LogBatch) -> bool: ...

    async def record_durable(self, batch: LogBatch) -> None: ...

    def admit(self, rows: int) -> Admission | None: ...

    def settle(self) -> None: ...

    def stop(self) -> None: ...


class WriteBehind:
    """Straight to the recorder's bounded queue; admission holds room in it."""

    durable = False

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.capacity_rows = float(recorder.max_rows)

    def record(self, batch: LogBatch) -> bool:
        return self._recorder.queue_batch(batch)

    async def record_durable(self, batch: LogBatch) -> None:
        self._recorder.record(batch)  # not durable here: the same as `record`

    def admit(self, rows: int) -> Admission | None:
        return self._recorder.reserve(rows)

    def settle(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _settle(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in waiters:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


class GroupCommit:
    """Spool first, fsynced before the request is answered (one fsync per group of waiting batches);
    no bound on admission: past the queue's bound, rows wait in the spool and are replayed."""

    durable = True
    capacity_rows = float("inf")

    def __init__(self, recorder: Recorder, spool: Spool, *, segment_seconds: float, segment_bytes: int) -> None:
        self._recorder = recorder
        self._spool = spool
        self.segment_seconds = max(segment_seconds, recorder.flush_interval)
        self.segment_bytes = segment_bytes
        # Batches waiting for the next group commit, with the futures to resolve.
        self._pending: list[tuple[LogBatch, Waiter | None]] = []
        self._cond = threading.Condition(threading.Lock())
        self._committing = False
        self._thread = threading.Thread(target=self._commit_loop, name="driftgate-log-commit", daemon=True)
        self._thread.start()

    def record(self, batch: LogBatch) -> bool:
        try:
            self._submit(batch, None)
        except NotReady:
            self._recorder.dropped_rows += len(batch)
            return False
        return True

    async def record_durable(self, batch: LogBatch) -> None:
        """Raises `NotReady` (503) when the spool cannot be written: the prediction was made but is
        not safely logged, so it must not be acknowledged."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._submit(batch, (loop, fut))
        await fut

    def admit(self, rows: int) -> Admission | None:
        return None if self._recorder.closed else Admission(rows)

    def settle(self) -> None:
        with self._cond:
            while self._pending or self._committing:
                self._cond.wait(0.05)

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def _submit(self, batch: LogBatch, waiter: Waiter | None) -> None:
        if not self._thread.is_alive():
            raise NotReady("the prediction log is closed")
        with self._cond:
            self._pending.append((batch, waiter))
            self._cond.notify()

    def _commit_loop(self) -> None:
        recorder = self._recorder
        while True:
            items: list[tuple[LogBatch, Waiter | None]] = []
            with self._cond:
                if not self._pending and not recorder.closed:
                    self._cond.wait(recorder.flush_interval)
                if not self._pending and recorder.closed:
                    return
                if self._pending:
                    items, self._pending = self._pending, []
                    self._committing = True
            if not items:
                with recorder.spool_lock:
                    self._maybe_seal()
                continue
            try:
                self._commit(items)
            finally:
                with self._cond:
                    self._committing = False
                    self._cond.notify_all()

    def _commit(self, items: list[tuple[LogBatch, Waiter | None]]) -> None:
        rows: list[Row] = []
        encoded: list[tuple[Waiter | None, BaseException | None]] = []
        for batch, waiter in items:
            try:
                rows.extend(encode(batch))
                encoded.append((waiter, None))
            except Exception as exc:  # a bug must cost one batch, not the thread
                log.error("prediction log rows of %s could not be encoded: %s", batch.endpoint, describe_error(exc))
                self._recorder.dropped_rows += len(batch)
                encoded.append((waiter, NotReady("prediction log row could not be encoded")))
        error = self._append(rows) if rows else None
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
        for waiter, own_error in encoded:
            if waiter is not None:
                by_loop.setdefault(waiter[0], []).append((waiter[1], own_error or error))
        for loop, futures in by_loop.items():
            ok = [f for f, e in futures if e is None]
            failed = [(f, e) for f, e in futures if e is not None]
            try:
                loop.call_soon_threadsafe(_settle, ok, None)
                for fut, err in failed:
                    loop.call_soon_threadsafe(_settle, [fut], err)
            except RuntimeError:  # that loop has closed; nobody is waiting any more
                pass
        with self._recorder.spool_lock:
            self._maybe_seal()

    def _append(self, rows: list[Row]) -> BaseException | None:
        """Append and fsync the rows, then queue them for the store (also when the spool failed: they
        may still be written); the error to answer with, if any."""
        n = count_rows(rows)
        seg: Segment | None = None
        error: BaseException | None = None
        try:
            with self._recorder.spool_lock:
                seg = self._spool.append(rows)
                self._spool.sync()
                self._recorder.hold(seg, n)
        except OSError as exc:
            log.error("prediction log spool write failed: %s", describe_error(exc))
            error = NotReady(f"the durable prediction log cannot be written ({type(exc).__name__})")
            seg = None
        self._recorder.queue_rows(rows, seg, n)
        return error

    def _maybe_seal(self) -> None:
        """Seal the active segment when old or big enough (the caller holds the spool lock)."""
        seg: Segment | None = self._spool.active
        if seg is None:
            return
        if seg.size >= self.segment_bytes or time.monotonic() - seg.opened_at >= self.segment_seconds:
            self._spool.seal()
            self._recorder.settle_segment(seg)
