"""Adaptive micro-batching: concurrent requests to one version share one model call.

While a model call runs, new requests queue; when it finishes they go together as the next call
(up to `max_rows`). A lone request never waits: with nothing in flight it is dispatched at once,
so batching costs no latency at low load and merges calls exactly when load makes them queue.

Coalescing under saturation: once requests queue behind calls, the batcher is *busy*, and a call
whose queue holds less than half the last cycle's demand (the requests of the last call plus those
that queued behind it, when they are at least `MIN_ROUND`) waits for the rest, while the event loop
is still receiving them. Without this, a closed loop of clients settles into alternating groups
(measured with 16 clients: calls of 15 and 1, or two of ~8), paying a model call's fixed cost
(~3.5 ms for a scikit-learn pipeline whatever its rows) twice per round. The wait ends when the
target is reached; when the loop has gone quiet (a probe every `PROBE_S` found it idle and no
request joined: nobody else is coming soon, and the batcher leaves the busy state); or after
`max_wait_us`, and never more than `WAIT_CALLS` model calls' time. At low load a request therefore
waits at most one probe, and only just after a burst of at least `MIN_ROUND` requests.

`max_wait_us` also bounds the wait for more requests before a second call starts beside one already
in flight (`max_in_flight` > 1).

A call running longer than `stall_after_ms` stops holding its slot (up to `MAX_STALLED` such
calls), so one slow request, or a model that hangs on some input, does not hold up the rest: one
call at a time, which merges the most requests per call, without head-of-line blocking.

Shedding: once every slot (`max_in_flight`, plus `MAX_STALLED` with a finite `stall_after_ms`) is
held by a call running longer than `shed_after_ms` (the endpoint's timeout: its callers have all had
their 504), the model is hung, and `submit` raises `Jammed` at once instead of queueing a request
that could only time out.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftgate.registry.schema import Columns, frame_of, merge_columns
from driftgate.serving.model_errors import ModelUnavailable

Scores = tuple[np.ndarray, np.ndarray | None]
# Calls past `stall_after_ms` that may run beside the normal ones: each holds a worker thread.
MAX_STALLED = 2
# While coalescing, how often the wait checks whether requests are still arriving. uvloop's timers
# count whole milliseconds, so this is their finest step.
PROBE_S = 0.001
# A coalescing wait lasts at most this many model calls' time (the calls' moving average).
WAIT_CALLS = 3.0
# Coalescing waits only for rounds of at least this many requests. At moderate load two or three
# requests overlap a call by chance (open traffic, not a closed loop of clients): instrumented at half
# load (1-row requests, 46 req/s, bursty arrivals), the server started 236 waits in 20 s, all at a
# target of 3, lasting 0.7 ms at the median, 5 ms at p90, up to 14 ms. A saturated closed loop of 16
# clients still waits at a target of 16 (15.7-15.9 requests per call either way).
MIN_ROUND = 4


class Jammed(RuntimeError):
    """Every call slot is held by a call older than `shed_after_ms`: the request is shed unqueued."""


@dataclass(slots=True)
class _Pending:
    columns: Columns
    rows: int
    future: asyncio.Future[Scores]
    submitted: float  # monotonic


class MicroBatcher:
    def __init__(
        self,
        score: Callable[[pd.DataFrame], Scores] | Callable[[Columns], Scores],
        executor: Executor,
        *,
        max_rows: int = 64,
        max_wait_us: int = 0,
        max_in_flight: int = 1,
        stall_after_ms: float = 50.0,
        shed_after_ms: float = float("inf"),
        frames: bool = True,
        on_call: Callable[[int, float, float], None] | None = None,
        whole_call_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        """`frames=False`: `score` takes the merged columns themselves (the shadow process builds its
        frame on its side; pickling numpy arrays is far cheaper than pickling a DataFrame).
        `on_call(rows, seconds, queued)`: told of every finished model call (metrics), on the event loop;
        `queued` is how long its oldest request waited for the call to start (behind a running call,
        or coalescing). `whole_call_errors`: failures of the call itself (a crashed worker process),
        given to every request of the call instead of retrying each alone."""
        self._score: Callable[[Any], Scores] = score
        self._frames = frames
        self._executor = executor
        self.max_rows = max_rows
        self.max_wait = max_wait_us / 1e6
        self.max_in_flight = max_in_flight
        self.stall_after = stall_after_ms / 1000
        self.shed_after = shed_after_ms / 1000
        self._whole_call_errors = whole_call_errors
        self._queue: list[_Pending] = []
        self._queued_rows = 0
        self._started: dict[int, float] = {}  # call number -> monotonic start, for calls in flight
        self._numbers = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._on_call = on_call
        # Coalescing (see the module docstring): on while requests queue behind model calls.
        self._busy = False
        self._target = 0  # requests in the last cycle: the last call's and those queued behind it
        self._call_s = 0.0  # moving average of a call's duration, dispatch to answers
        self._probe: asyncio.TimerHandle | None = None
        self._wait_started = 0.0
        self._wait_requests = 0
        self.calls = 0  # model calls made, for tests and metrics

    async def submit(self, columns: Columns) -> Scores:
        """Scores for these rows (validated columns, see `InputSchema.to_columns`). Requests are
        merged as columns and one DataFrame is built per model call, in the worker thread."""
        if self.jammed():
            # Requests that timed out while waiting here would stay queued until a call ends.
            self._queue = [p for p in self._queue if not p.future.cancelled()]
            self._queued_rows = sum(p.rows for p in self._queue)
            raise Jammed(
                f"all {self._in_flight} model calls in flight have run longer than {self.shed_after * 1000:.0f} ms"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scores] = loop.create_future()
        rows = len(next(iter(columns.values()))) if columns else 0
        self._queue.append(_Pending(columns, rows, future, time.monotonic()))
        self._queued_rows += rows
        self._maybe_dispatch(loop)
        return await future

    @property
    def _in_flight(self) -> int:
        return len(self._started)

    @property
    def slots(self) -> int:
        """The most calls in flight at once: the threads (or worker processes) this batcher needs."""
        return self.max_in_flight + (MAX_STALLED if self.stall_after != float("inf") else 0)

    def jammed(self) -> bool:
        """Every slot is held by a call older than `shed_after`: new requests could only time out."""
        if self._in_flight < self.slots:
            return False
        oldest_allowed = time.monotonic() - self.shed_after
        return all(t <= oldest_allowed for t in self._started.values())

    def _free_slot(self) -> bool:
        """A call may start: fewer than `max_in_flight` calls are running that are not stalled."""
        if not self._started:
            return True
        if self._in_flight >= self.slots:
            return False
        now = time.monotonic()
        return sum(now - t < self.stall_after for t in self._started.values()) < self.max_in_flight

    def _maybe_dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._free_slot():
            if self._in_flight and self._queued_rows < self.max_rows and self.max_wait > 0 and self._timer is None:
                # Waiting longer than a call is pointless: the running one finishes first and dispatches.
                self._timer = loop.call_later(min(self.max_wait, self._call_s), self._on_timer, loop)
                return
            if self._coalescing(loop):
                return
            self._dispatch(loop)
        if (
            self._queue
            and self._stall_timer is None
            and self._in_flight < self.slots
            and self.stall_after != float("inf")
        ):
            # Look again when the oldest running call would count as stalled (a finishing call
            # dispatches anyway). None running: one stalled since `_free_slot` looked; look at once.
            now = time.monotonic()
            running = [t for t in self._started.values() if now - t < self.stall_after]
            due = min(running) + self.stall_after - now if running else 0.0
            self._stall_timer = loop.call_later(max(due, 0.001), self._on_stall_timer, loop)

    def _on_stall_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stall_timer = None
        self._maybe_dispatch(loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._queue and self._free_slot():
            self._dispatch(loop)

    def _wait_cap(self) -> float:
        return min(self.max_wait, WAIT_CALLS * self._call_s)

    def _coalescing(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether the queue waits for more before the next call (nothing is in flight)."""
        if self._probe is not None:
            return not self._round_complete()  # a wait is on: it ends at the target
        # Only a queue well short of a big enough target waits: at moderate load (a call of two
        # requests, one queued behind it) the next one goes at once.
        if (
            not self._busy
            or self._in_flight
            or self._target < MIN_ROUND
            or 2 * len(self._queue) >= self._target
            or self._wait_cap() <= 0
        ):
            return False
        now = time.monotonic()
        self._wait_started, self._wait_requests = now, len(self._queue)
        self._probe = loop.call_later(PROBE_S, self._on_probe, loop, now + PROBE_S)
        return True

    def _on_probe(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        self._probe = None
        now = time.monotonic()
        # Requests joined since the last probe, or it fired late because the loop was busy (receiving,
        # decoding): more are coming.
        lively = len(self._queue) > self._wait_requests or now - due > PROBE_S / 2
        if not self._round_complete() and now - self._wait_started < self._wait_cap():
            if lively:
                self._wait_requests = len(self._queue)
                self._probe = loop.call_later(PROBE_S, self._on_probe, loop, now + PROBE_S)
                return
            self._busy = False  # the loop is idle: nobody else is coming soon
        if self._queue and self._free_slot():
            self._dispatch(loop)

    def _round_complete(self) -> bool:
        return len(self._queue) >= self._target or self._queued_rows >= self.max_rows

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        rows = 0
        while self._queue and (not taken or rows + self._queue[0].rows <= self.max_rows):
            item = self._queue.pop(0)
            if item.future.cancelled():  # its caller timed out or went away
                self._queued_rows -= item.rows
                continue
            taken.append(item)
            rows += item.rows
        self._queued_rows -= rows
        return taken

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        for handle in (self._timer, self._probe):
            if handle is not None:
                handle.cancel()
        self._timer = self._probe = None
        batch = self._take()
        if not batch:
            return
        number = next(self._numbers)
        self._started[number] = now = time.monotonic()
        queued = now - batch[0].submitted
        self.calls += 1
        try:
            task = loop.run_in_executor(self._executor, self._run, [p.columns for p in batch])
        except RuntimeError:  # the executor was shut down (the server is stopping): fail, never hang
            self._started.pop(number)
            self._shut_down(batch)
            return
        task.add_done_callback(lambda done: self._finish(loop, number, batch, queued, done))

    def _shut_down(self, batch: list[_Pending]) -> None:
        """Refuse `batch` and everything queued behind it: no call can start any more."""
        for pending in [*batch, *self._queue]:
            if not pending.future.done():
                pending.future.set_exception(ModelUnavailable("the model's executor has shut down (server stopping)"))
        self._queue.clear()
        self._queued_rows = 0

    def _run(self, parts: list[Columns]) -> list[Scores | BaseException]:
        """In a worker thread: one call for all; if it fails, each request alone, so one bad
        request's error is its own and the others still get answers."""
        if len(parts) == 1:
            return [self._score_one(parts[0])]
        try:
            preds, proba = self._score(self._model_input(merge_columns(parts)))
        except self._whole_call_errors as exc:
            return [exc] * len(parts)
        except Exception:
            return [self._score_one(p) for p in parts]
        out: list[Scores | BaseException] = []
        start = 0
        for part in parts:
            end = start + len(next(iter(part.values())))
            out.append((preds[start:end], None if proba is None else proba[start:end]))
            start = end
        return out

    def _model_input(self, columns: Columns) -> pd.DataFrame | Columns:
        return frame_of(columns) if self._frames else columns

    def _score_one(self, columns: Columns) -> Scores | BaseException:
        try:
            return self._score(self._model_input(columns))
        except Exception as exc:
            return exc

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        number: int,
        batch: list[_Pending],
        queued: float,
        done: asyncio.Future,
    ) -> None:
        seconds = time.monotonic() - self._started.pop(number)
        self._call_s = seconds if not self._call_s else 0.8 * self._call_s + 0.2 * seconds
        rows = sum(p.rows for p in batch)
        if self._queue:  # requests queued behind this call: the model is saturated
            self._busy = True
        if self._busy:
            self._target = len(batch) + len(self._queue)
        exc = done.exception()
        results = [exc] * len(batch) if exc is not None else done.result()
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        self._maybe_dispatch(loop)
        if self._on_call is not None:  # last: whatever it does, callers have their answers
            self._on_call(rows, seconds, queued)
