"""Adaptive micro-batching: concurrent requests to one version share one model call.

While a model call runs, new requests queue; when it finishes they go together as the next call
(up to `max_rows`). A lone request never waits: with nothing in flight it is dispatched at once,
so batching costs no latency at low load and merges calls exactly when load makes them queue.
`max_wait_us` adds an optional short wait for more requests when one call is already in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pandas as pd

Scores = tuple[np.ndarray, np.ndarray | None]


@dataclass(slots=True)
class _Pending:
    frame: pd.DataFrame
    future: asyncio.Future[Scores]


class MicroBatcher:
    def __init__(
        self,
        score: Callable[[pd.DataFrame], Scores],
        executor: Executor,
        *,
        max_rows: int = 64,
        max_wait_us: int = 0,
        max_in_flight: int = 1,
    ) -> None:
        self._score = score
        self._executor = executor
        self.max_rows = max_rows
        self.max_wait = max_wait_us / 1e6
        self.max_in_flight = max_in_flight
        self._queue: list[_Pending] = []
        self._queued_rows = 0
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self.calls = 0  # model calls made, for tests and metrics

    async def submit(self, frame: pd.DataFrame) -> Scores:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scores] = loop.create_future()
        self._queue.append(_Pending(frame, future))
        self._queued_rows += len(frame)
        self._maybe_dispatch(loop)
        return await future

    def _maybe_dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._in_flight < self.max_in_flight:
            if self._in_flight and self._queued_rows < self.max_rows and self.max_wait > 0 and self._timer is None:
                self._timer = loop.call_later(self.max_wait, self._on_timer, loop)
                return
            self._dispatch(loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._queue and self._in_flight < self.max_in_flight:
            self._dispatch(loop)

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        rows = 0
        while self._queue and (not taken or rows + len(self._queue[0].frame) <= self.max_rows):
            item = self._queue.pop(0)
            if item.future.cancelled():  # its caller timed out or went away
                self._queued_rows -= len(item.frame)
                continue
            taken.append(item)
            rows += len(item.frame)
        self._queued_rows -= rows
        return taken

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._take()
        if not batch:
            return
        self._in_flight += 1
        self.calls += 1
        task = loop.run_in_executor(self._executor, self._run, [p.frame for p in batch])
        task.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _run(self, frames: list[pd.DataFrame]) -> list[Scores | BaseException]:
        """In a worker thread: one call for all; if it fails, each request alone, so one bad
        request's error is its own and the others still get answers."""
        if len(frames) == 1:
            return [self._score_one(frames[0])]
        merged = pd.concat(frames, ignore_index=True, copy=False)
        try:
            preds, proba = self._score(merged)
        except Exception:
            return [self._score_one(f) for f in frames]
        out: list[Scores | BaseException] = []
        start = 0
        for frame in frames:
            end = start + len(frame)
            out.append((preds[start:end], None if proba is None else proba[start:end]))
            start = end
        return out

    def _score_one(self, frame: pd.DataFrame) -> Scores | BaseException:
        try:
            return self._score(frame)
        except Exception as exc:
            return exc

    def _finish(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending], done: asyncio.Future) -> None:
        self._in_flight -= 1
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
