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

from driftgate.serving import batching
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
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    max_rows=st.integers(1, 100),
    max_wait_us=st.sampled_from([0, 20_000]),
)
def test_each_caller_gets_its_own_rows(sizes: list[int], max_rows: int, max_wait_us: int) -> None:
    batcher = MicroBatcher(score, ThreadPoolExecutor(2), max_rows=max_rows, max_in_flight=1, max_wait_us=max_wait_us)
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


def _closed_loop(batcher: MicroBatcher, clients: int, rounds: int) -> list[int]:
    """`clients` callers that each send a request as soon as their last one is answered, after some
    synchronous work on the event loop (what decoding a request body costs); rows per model call."""
    calls: list[int] = []

    async def client(i: int) -> None:
        for r in range(rounds):
            time.sleep(0.001)  # decoding: the loop is busy, nothing else runs meanwhile
            preds, _ = await batcher.submit({"x": np.array([float(i * 1000 + r)])})
            assert preds.tolist() == [2.0 * (i * 1000 + r)]

    async def scenario() -> None:
        await asyncio.gather(*(client(i) for i in range(clients)))

    batcher._on_call = lambda rows, seconds, queued: calls.append(rows)
    asyncio.run(scenario())
    return calls


def fixed_cost(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
    """A model whose call costs the same whatever its rows, like a scikit-learn pipeline's."""
    time.sleep(0.004)
    return frame["x"].to_numpy() * 2, None


def test_saturated_clients_are_coalesced_into_full_calls(executor: ThreadPoolExecutor) -> None:
    """A closed loop of clients settles into split groups when each call takes only what queued;
    coalescing waits, while requests are still arriving, for the rest of them."""
    split = _closed_loop(MicroBatcher(fixed_cost, executor, max_rows=1000, max_wait_us=0), 16, 12)
    coalesced = _closed_loop(MicroBatcher(fixed_cost, executor, max_rows=1000, max_wait_us=50_000), 16, 12)
    assert sum(split) == sum(coalesced) == 16 * 12
    # Most calls carry every client (the first ones cannot: nobody has queued yet).
    assert sum(n == 16 for n in coalesced) >= len(coalesced) // 2, coalesced
    assert len(coalesced) < len(split), (coalesced, split)


def test_after_a_burst_a_lone_request_does_not_wait_for_company(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Coalescing stops once requests stop arriving: a lone request after a burst is sent after one
    probe of an idle loop, not after the cap."""
    # A cap far above the call's time, so that the assertion below leaves room for a noisy machine
    # (a probe that fires late reads as a busy loop and prolongs the wait by one more probe).
    monkeypatch.setattr(batching, "WAIT_CALLS", 30.0)

    def slow(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
        time.sleep(0.03)
        return frame["x"].to_numpy(), None

    async def scenario() -> float:
        batcher = MicroBatcher(slow, executor, max_rows=1000, max_wait_us=10_000_000)
        # One call of 1 row, 7 queued behind it (saturated: busy), then one call of those 7.
        await asyncio.gather(*(batcher.submit({"x": np.array([float(i)])}) for i in range(8)))
        assert batcher._busy and batcher.calls == 2
        started = time.monotonic()
        await batcher.submit({"x": np.array([1.0])})
        assert not batcher._busy
        return time.monotonic() - started

    # The cap is 30 calls (~900 ms) on top of the call's 30 ms; an idle loop is seen in ~1 ms.
    assert asyncio.run(scenario()) < 0.5


def test_requests_that_overlap_a_call_by_chance_are_not_held_back(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At moderate load a few requests overlap a call by chance: a call of two finishing with one
    queued behind it is no closed loop of clients, and the queued request goes at once."""
    monkeypatch.setattr(batching, "PROBE_S", 0.3)  # a wait, had it started, would last this long
    calls: list[tuple[float, float]] = []

    def model(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
        started = time.monotonic()
        time.sleep(0.03)
        calls.append((started, time.monotonic()))
        return frame["x"].to_numpy(), None

    async def scenario() -> None:
        batcher = MicroBatcher(model, executor, max_rows=1000, max_wait_us=10_000_000)
        one = asyncio.ensure_future(batcher.submit({"x": np.array([1.0])}))
        await asyncio.sleep(0.01)  # the first call runs; two requests queue behind it
        two = [asyncio.ensure_future(batcher.submit({"x": np.array([float(i)])})) for i in (2, 3)]
        await one
        assert batcher._busy  # requests queued behind a call
        await asyncio.sleep(0.01)  # the call of those two runs; one more queues behind it
        await asyncio.gather(*two, batcher.submit({"x": np.array([4.0])}))
        assert batcher.calls == 3

    asyncio.run(scenario())
    gap = calls[2][0] - calls[1][1]
    assert gap < 0.1, f"the queued request waited {gap * 1000:.0f} ms for company"


def test_each_call_reports_how_long_its_oldest_request_waited(executor: ThreadPoolExecutor) -> None:
    """`on_call` gets rows, the call's time and its oldest request's wait: none to speak of for a
    request that found the model free, the rest of the running call for one queued behind it."""
    reports: list[tuple[int, float, float]] = []
    gate = threading.Event()

    def model(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
        gate.wait(5)
        return frame["x"].to_numpy(), None

    def on_call(rows: int, seconds: float, queued: float) -> None:
        reports.append((rows, seconds, queued))

    async def scenario() -> None:
        batcher = MicroBatcher(model, executor, max_rows=1000, stall_after_ms=10_000, on_call=on_call)
        first = asyncio.ensure_future(batcher.submit({"x": np.array([1.0])}))
        await asyncio.sleep(0)  # the first call starts
        second = asyncio.ensure_future(batcher.submit({"x": np.array([2.0, 3.0])}))
        await asyncio.sleep(0.05)  # queued behind the first call at least this long
        gate.set()
        await asyncio.gather(first, second)

    asyncio.run(scenario())
    (rows1, seconds1, queued1), (rows2, _, queued2) = reports
    assert (rows1, rows2) == (1, 2)
    assert seconds1 >= 0.05 and queued2 >= 0.05
    assert queued1 < queued2


def test_requests_queued_when_the_executor_shuts_down_fail_instead_of_hanging() -> None:
    """Server shutdown closes the shadow executor while copies still queue behind a running call: the
    call's end used to raise 'cannot schedule new futures after shutdown' in an event-loop callback (a
    traceback on the console) and leave the queued requests waiting forever."""
    executor = ThreadPoolExecutor(1)
    release = threading.Event()

    def slow(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
        release.wait(10)
        return frame["x"].to_numpy(), None

    batcher = MicroBatcher(slow, executor, max_rows=1, max_in_flight=1, stall_after_ms=float("inf"))

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(batcher.submit({"x": np.array([1.0])}))
        second = asyncio.ensure_future(batcher.submit({"x": np.array([2.0])}))  # queued behind the first
        await asyncio.sleep(0)
        executor.shutdown(wait=False)
        release.set()
        return await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 10)

    answered, refused = asyncio.run(scenario())
    assert isinstance(answered, tuple)
    assert isinstance(refused, batching.ModelUnavailable) and "shut down" in str(refused)
