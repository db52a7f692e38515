"""Micro-batching: every caller gets exactly its own rows, under concurrency, sizes and errors."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftgate.serving.batching import MicroBatcher


def score(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic 'model': the prediction is the row's own value, doubled; fails on -1."""
    x = frame["x"].to_numpy()
    if (x == -1).any():
        raise ValueError("poisoned row")
    time.sleep(0.002)  # long enough for concurrent callers to queue up behind a call
    return x * 2, np.column_stack([x, -x])


async def _run(sizes: list[int], batcher: MicroBatcher, poisoned: set[int] = frozenset()) -> list:
    async def one(i: int, n: int) -> object:
        values = np.arange(n, dtype=float) + 1000 * i
        if i in poisoned:
            values[0] = -1
        try:
            preds, proba = await batcher.submit({"x": np.asarray(values, dtype=float)})
        except ValueError as exc:
            return exc
        assert proba is not None
        return values, preds, proba

    return await asyncio.gather(*(one(i, n) for i, n in enumerate(sizes)))


@pytest.fixture(scope="module")
def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(4)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=30), max_rows=st.integers(1, 100))
def test_each_caller_gets_its_own_rows(sizes: list[int], max_rows: int) -> None:
    batcher = MicroBatcher(score, ThreadPoolExecutor(2), max_rows=max_rows, max_in_flight=1)
    for values, preds, proba in asyncio.run(_run(sizes, batcher)):
        np.testing.assert_array_equal(preds, values * 2)
        np.testing.assert_array_equal(proba[:, 0], values)


def test_concurrent_requests_are_merged(executor: ThreadPoolExecutor) -> None:
    batcher = MicroBatcher(score, executor, max_rows=1000, max_in_flight=1)
    asyncio.run(_run([1] * 50, batcher))
    assert batcher.calls < 50


def test_a_lone_request_is_not_held_back(executor: ThreadPoolExecutor) -> None:
    batcher = MicroBatcher(score, executor, max_rows=1000, max_wait_us=10_000_000)
    asyncio.run(_run([3], batcher))
    assert batcher.calls == 1  # it did not wait the 10 s for company


def test_one_bad_request_fails_alone(executor: ThreadPoolExecutor) -> None:
    batcher = MicroBatcher(score, executor, max_rows=1000, max_in_flight=1)
    results = asyncio.run(_run([4] * 12, batcher, poisoned={5}))
    assert isinstance(results[5], ValueError)
    for i, result in enumerate(results):
        if i != 5:
            values, preds, _ = result
            np.testing.assert_array_equal(preds, values * 2)


def test_a_cancelled_caller_is_skipped(executor: ThreadPoolExecutor) -> None:
    gate = threading.Event()

    def slow(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
        gate.wait(5)
        return frame["x"].to_numpy(), None

    async def scenario() -> tuple[np.ndarray, int]:
        batcher = MicroBatcher(slow, executor, max_rows=10, max_in_flight=1, stall_after_ms=float("inf"))
        first = asyncio.ensure_future(batcher.submit({"x": np.array([1.0])}))
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit({"x": np.array([2.0])}), 0.05)
        third = asyncio.ensure_future(batcher.submit({"x": np.array([3.0])}))
        gate.set()
        await first
        preds, _ = await third
        return preds, batcher.calls

    preds, calls = asyncio.run(scenario())
    assert preds.tolist() == [3.0]
    assert calls == 2


def test_a_stalled_call_stops_holding_its_slot(executor: ThreadPoolExecutor) -> None:
    """One call at a time, but a call past stall_after_ms lets the next one start: a request that
    hangs the model does not hold up the ones behind it."""
    gate = threading.Event()

    def hangs_on_zero(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
        if (frame["x"] == 0).any():
            gate.wait(10)
        return frame["x"].to_numpy() * 2, None

    async def scenario() -> tuple[list[float], bool, int]:
        batcher = MicroBatcher(hangs_on_zero, executor, max_rows=100, max_in_flight=1, stall_after_ms=30)
        stuck = asyncio.ensure_future(batcher.submit({"x": np.array([0.0])}))
        await asyncio.sleep(0.005)
        # Queued behind the stuck call, then served once it counts as stalled; merged into one call.
        quick = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit({"x": np.array([float(i)])}) for i in range(1, 6))), 5
        )
        still_stuck = not stuck.done()
        gate.set()
        await stuck
        return [float(p[0][0]) for p in quick], still_stuck, batcher.calls

    answers, still_stuck, calls = asyncio.run(scenario())
    assert answers == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert still_stuck and calls == 2
