"""The recorder: prediction log rows written in batches by a background thread, off the request path.

A request hands over one `LogBatch` (its frame, outputs and ids) in O(1). What happens next:

- default mode: the batch waits in a bounded in-memory queue; the writer thread encodes (and
  redacts) queued batches and writes them in one transaction every `flush_interval` seconds or
  every `batch_rows` rows. A full queue drops the batch and counts it (`on_drop`). `kill -9`
  loses at most what was queued; `close()` (SIGTERM) writes everything.
- durable mode (`spool` given and `durable=True`): `await record_durable(batch)` returns only once
  the batch's rows are fsynced to the spool. A committer thread encodes all waiting batches,
  appends them in one write and fsyncs once for all of them (group commit), then hands the rows to
  the writer thread. Nothing acknowledged is lost; files left by a crash are replayed on start.
- the store is down: rows the store refuses are parked in the spool (both modes) and replayed,
  with backoff, until the store takes them again. Writes are idempotent (existing ids are kept),
  so a replay after a crash between "written" and "file removed" is harmless.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from driftgate.core.rows import LogBatch, Row, count_rows, encode, merge
from driftgate.errors import NotReady
from driftgate.records.spool import Segment, Spool

log = logging.getLogger("driftgate.recorder")
# Parked spool files replayed in one transaction at most (see `Recorder._replay_backlog`).
REPLAY_FILES = 256

__all__ = ["Admission", "LogBatch", "PredictionLog", "Recorder", "RowWriter"]


class RowWriter(Protocol):
    """Writes encoded rows in one transaction; `replay=True` means some ids may already be stored."""

    def __call__(self, rows: list[Row], *, replay: bool = False) -> None: ...


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


Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]

# ---- admission: log capacity held for a request before it is scored -------------------------------

_admitted: contextvars.ContextVar[Admission | None] = contextvars.ContextVar("driftgate_log_admission", default=None)


class Admission:
    """Queue capacity held for one request's rows, from before it is scored until its log batch is
    handed over, so that an id is never handed out for a row the log would drop (SPEC 5).

    Used as a context manager around the scoring: `Recorder.record` finds it in the request's context
    (the data plane need not pass it along) and queues a batch it covers even past the bound. On exit
    whatever was not used is given back.
    """

    def __init__(self, rows: int, release: Callable[[int], None] | None = None) -> None:
        self.rows = rows
        self._release = release
        self._token: contextvars.Token[Admission | None] | None = None

    def __enter__(self) -> Admission:
        self._token = _admitted.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _admitted.reset(self._token)
            self._token = None
        self.close()

    def take(self, rows: int) -> bool:
        """Use `rows` of what is held for a batch being queued: all of them or none."""
        if 0 < rows <= self.rows:
            self.rows -= rows
            return True
        return False

    def close(self) -> None:
        """Give back what was not used."""
        rows, self.rows = self.rows, 0
        if rows and self._release is not None:
            self._release(rows)


def _take_admitted(rows: int) -> bool:
    """True when the current request holds capacity for these rows (and now uses it)."""
    admission = _admitted.get()
    return admission is not None and admission.take(rows)


def describe_error(exc: BaseException) -> str:
    """One line naming the error. Driver errors may quote statement parameters: only the first line."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig).splitlines()[0][:200] if str(orig) else ''}"


def _settle(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in waiters:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


class Recorder:
    """Bounded queue + writer thread (+ group-commit thread in durable mode).

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
        self._write = write
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.max_rows = max_rows
        self._on_drop = on_drop
        self.spool = Spool(spool) if isinstance(spool, Path) else spool
        self.durable = durable and self.spool is not None
        self.segment_seconds = max(segment_seconds, flush_interval)
        self.segment_bytes = segment_bytes
        # The store queue: (LogBatch | encoded rows, the spool segment holding them or None).
        self._queue: deque[tuple[LogBatch | list[Row], Segment | None]] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._db_lock = threading.RLock()
        self._spool_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._backlog: list[Path] = list(self.spool.adopted) if self.spool else []
        self._retry_at = 0.0
        self._backoff = 0.5
        self.store_available = True
        self._reserved = 0  # rows admitted (`admit`) and not yet queued or given back
        self.dropped_rows = 0
        self.written_rows = 0
        self.spooled_rows = 0
        """Rows parked in spool files because the store refused them (not counting durable appends)."""
        self.replayed_rows = 0
        # Durable mode: batches waiting for the next group commit, with the futures to resolve.
        self._pending: list[tuple[LogBatch, Waiter | None]] = []
        self._pending_cond = threading.Condition(threading.Lock())
        self._committing = False
        self._committer: threading.Thread | None = None
        if self.durable:
            self._committer = threading.Thread(target=self._commit_loop, name="driftgate-log-commit", daemon=True)
            self._committer.start()
        self._thread = threading.Thread(target=self._run, name="driftgate-recorder", daemon=True)
        self._thread.start()

    # ---- what requests call ----------------------------------------------------------------------

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def backlog_files(self) -> int:
        return len(self._backlog)

    def record(self, batch: LogBatch) -> bool:
        """Hand a batch over without waiting. False when it was dropped (queue full)."""
        if self.durable:
            try:
                self._submit(batch, None)
            except NotReady:
                self.dropped_rows += len(batch)
                return False
            return True
        with self._lock:
            admitted = _take_admitted(len(batch))
            if admitted:  # its room was held since admission: queued whatever the bound says now
                self._reserved -= len(batch)
            # A closed recorder writes nothing more: a batch handed over now is lost, so counted.
            # Room held for admitted requests is not free for others (shadows, failed requests).
            dropped = self._stop or (not admitted and self._queued_rows + self._reserved + len(batch) > self.max_rows)
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

    @property
    def capacity_rows(self) -> float:
        """The most rows one request can be admitted with (durable mode: no bound, rows wait on disk)."""
        return float("inf") if self.durable else self.max_rows

    def admit(self, rows: int) -> Admission | None:
        """Hold queue room for a request's `rows` before it is scored, or None when the queue cannot
        take them now (the caller refuses the request: 503 with Retry-After). Durable mode always
        admits while open: past the bound its rows stay in the spool and are replayed."""
        if self.durable:
            return None if self._stop else Admission(rows)
        with self._lock:
            if self._stop or self._queued_rows + self._reserved + rows > self.max_rows:
                return None
            self._reserved += rows
        return Admission(rows, self._unreserve)

    def take_back(self, batch: LogBatch) -> None:
        """Queue a batch that was already accepted elsewhere (the writer process's queue) even past the
        bound: its ids were handed out. Memory stays bounded by both queues' bounds together."""
        with self._lock:
            self._queue.append((batch, None))
            self._queued_rows += len(batch)
        if self._queued_rows >= self.batch_rows:
            self._wake.set()

    def _unreserve(self, rows: int) -> None:
        with self._lock:
            self._reserved -= rows

    async def record_durable(self, batch: LogBatch) -> None:
        """Return once the batch is durable (fsynced to the spool); plain `record` when not durable.

        Raises `NotReady` (503) when the spool cannot be written: the prediction was made but is
        not safely logged, so it must not be acknowledged.
        """
        if not self.durable:
            self.record(batch)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._submit(batch, (loop, fut))
        await fut

    def flush(self) -> None:
        """Write everything handed over so far, in the caller's thread (feedback, shutdown, tests).

        Also retries parked rows once if the store was down. Never raises: rows the store refuses
        are parked in the spool.
        """
        if self.durable:
            self._wait_committed()
        with self._db_lock:
            if self._backlog or not self.store_available:
                self._replay_backlog()
            while self._drain_once():
                pass

    def close(self) -> None:
        """Stop taking work after writing everything (SIGTERM path). Rows the store refuses stay spooled."""
        self._stop = True
        if self._committer is not None:
            with self._pending_cond:
                self._pending_cond.notify_all()
            self._committer.join(timeout=30)
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
        if self.spool is not None:
            with self._spool_lock:
                seg = self.spool.seal()
                if seg is not None:
                    self._settle_segment(seg)
            self.spool.close()

    # ---- group commit (durable mode) ----------------------------------------------------------

    def _submit(self, batch: LogBatch, waiter: Waiter | None) -> None:
        if self._committer is None or not self._committer.is_alive():
            raise NotReady("the prediction log is closed")
        with self._pending_cond:
            self._pending.append((batch, waiter))
            self._pending_cond.notify()

    def _wait_committed(self) -> None:
        with self._pending_cond:
            while self._pending or self._committing:
                self._pending_cond.wait(0.05)

    def _commit_loop(self) -> None:
        while True:
            items: list[tuple[LogBatch, Waiter | None]] = []
            with self._pending_cond:
                if not self._pending and not self._stop:
                    self._pending_cond.wait(self.flush_interval)
                if not self._pending and self._stop:
                    return
                if self._pending:
                    items, self._pending = self._pending, []
                    self._committing = True
            if not items:
                with self._spool_lock:
                    self._maybe_seal()
                continue
            try:
                self._commit(items)
            finally:
                with self._pending_cond:
                    self._committing = False
                    self._pending_cond.notify_all()

    def _commit(self, items: list[tuple[LogBatch, Waiter | None]]) -> None:
        rows: list[Row] = []
        encoded: list[tuple[Waiter | None, BaseException | None]] = []
        for batch, waiter in items:
            try:
                rows.extend(encode(batch))
                encoded.append((waiter, None))
            except Exception as exc:  # a bug must cost one batch, not the thread
                log.error("prediction log rows of %s could not be encoded: %s", batch.endpoint, describe_error(exc))
                self.dropped_rows += len(batch)
                encoded.append((waiter, NotReady("prediction log row could not be encoded")))
        error: BaseException | None = None
        seg: Segment | None = None
        if rows:
            assert self.spool is not None
            n = count_rows(rows)
            try:
                with self._spool_lock:
                    seg = self.spool.append(rows)
                    self.spool.sync()
                    with self._lock:
                        seg.pending += n
            except OSError as exc:
                log.error("prediction log spool write failed: %s", describe_error(exc))
                error = NotReady(f"the durable prediction log cannot be written ({type(exc).__name__})")
                seg = None
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
        with self._spool_lock:
            self._maybe_seal()

    def _maybe_seal(self) -> None:
        """Seal the active segment when old or big enough (the caller holds `_spool_lock`)."""
        if self.spool is None:
            return
        seg = self.spool.active
        if seg is None:
            return
        if seg.size >= self.segment_bytes or time.monotonic() - seg.opened_at >= self.segment_seconds:
            self.spool.seal()
            self._settle_segment(seg)

    def _settle_segment(self, seg: Segment) -> None:
        """A sealed segment with nothing in flight is removed, or queued for replay if a write failed."""
        with self._lock:
            if not seg.sealed or seg.pending > 0:
                return
            if seg.failed:
                if seg.path not in self._backlog:
                    self._backlog.append(seg.path)
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
                self._store_down(exc, count_rows(rows))
        if not written:
            # Durable rows are in the spool already; the rest are parked there now.
            self._park([row for item, seg in encoded if seg is None for row in item])
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
                with self._spool_lock:  # a failed segment must be sealed before it can be replayed
                    if self.spool.active is seg:
                        self.spool.seal()
            self._settle_segment(seg)

    def _park(self, rows: list[Row]) -> None:
        """Keep rows the store refused in a new spool file, for `_replay_backlog`."""
        if not rows:
            return
        if self.spool is None:
            self.dropped_rows += count_rows(rows)
            log.error("store unavailable and no spool: %d prediction log rows lost", count_rows(rows))
            return
        try:
            path = self.spool.write_sealed(rows)
        except OSError as exc:
            self.dropped_rows += count_rows(rows)
            log.error(
                "store unavailable and spool not writable (%s): %d rows lost", describe_error(exc), count_rows(rows)
            )
            return
        with self._lock:
            self._backlog.append(path)
        self.spooled_rows += count_rows(rows)

    def _store_down(self, exc: BaseException, n: int) -> None:
        if self.store_available:
            log.error(
                "the store refused %d prediction log rows (%s); spooling until it is back", n, describe_error(exc)
            )
        self.store_available = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 5.0)

    def _replay_backlog(self) -> None:
        """Write parked files to the store, oldest first; stop at the first refusal.

        Several files go in one transaction (up to `4 * batch_rows` predictions): an outage under load
        parks hundreds of small files, and one transaction each made the log take ~20 s to catch up
        after a 15 s PostgreSQL outage (in-process writer, 4 clients), with feedback answering 503
        for the newest ids meanwhile."""
        while True:
            with self._lock:
                candidates = list(self._backlog[:REPLAY_FILES])
            if not candidates:
                break
            paths: list[Path] = []
            rows: list[Row] = []
            predictions = 0
            try:
                for path in candidates:
                    part = Spool.read(path) if path.exists() else []
                    n = count_rows(part)
                    if paths and predictions + n > 4 * self.batch_rows:  # the bound `_take` keeps too
                        break
                    paths.append(path)
                    rows.extend(part)
                    predictions += n
                # One transaction per group; a single file bigger than the bound goes in chunks as before.
                step = max(len(rows), 1) if predictions <= 4 * self.batch_rows else self.batch_rows
                for start in range(0, len(rows), step):
                    self._write(rows[start : start + step], replay=True)
            except Exception as exc:
                self._store_down(exc, 0)
                return
            self.replayed_rows += predictions
            for path in paths:
                Spool.remove(path)
            with self._lock:
                # Only appends happen elsewhere: the files written are still the oldest ones.
                del self._backlog[: len(paths)]
        if not self.store_available:
            log.warning("the store is back; parked prediction log rows are written")
        self.store_available = True
        self._backoff = 0.5

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                with self._db_lock:
                    if (self._backlog or not self.store_available) and time.monotonic() >= self._retry_at:
                        self._replay_backlog()
                    while self._drain_once() and not self._stop:
                        pass
            except Exception as exc:  # keep the writer alive whatever happens
                log.error("prediction log writer: %s", describe_error(exc))
