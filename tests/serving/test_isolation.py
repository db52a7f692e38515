"""Model-call isolation pieces (serving/isolation.py) on their own: lanes, shedding, worker processes."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftgate.registry.formats import python_artifact
from driftgate.serving import isolation
from driftgate.serving.batching import Jammed, MicroBatcher
from driftgate.serving.isolation import (
    Lane,
    ModelUnavailable,
    ProcessPool,
    ProcessWorker,
    Spawner,
    WorkerCrashed,
    WorkerSpec,
)
from tests.helpers import until


def _lane_threads(lane: Lane) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"driftgate-model-{lane.name}-")]


def test_a_lane_runs_at_most_its_threads_daemon_and_ends_them_on_shutdown() -> None:
    lane = Lane(2, "unit")
    gate = threading.Event()
    running: list[int] = []
    futures = [lane.submit(lambda i=i: (running.append(i), gate.wait(30), i)[2]) for i in range(3)]
    until(lambda: len(running) == 2)
    threads = _lane_threads(lane)
    assert len(threads) == 2 and all(t.daemon for t in threads)  # a hung call never blocks the exit
    assert not futures[2].running()  # the third waits for a thread of this lane
    gate.set()
    assert sorted(f.result(timeout=30) for f in futures) == [0, 1, 2]
    lane.shutdown()
    until(lambda: not any(t.is_alive() for t in threads))
    assert lane.submit(lambda: 7).result(timeout=30) == 7  # late work still runs (a retired batcher's last)


def test_a_batcher_whose_slots_are_all_hung_sheds_at_once() -> None:
    gate = threading.Event()
    entered: list[int] = []

    def hang(frame: pd.DataFrame) -> tuple[np.ndarray, None]:
        entered.append(1)
        gate.wait(30)
        return frame["x"].to_numpy(), None

    lane = Lane(3, "jam")
    batcher = MicroBatcher(hang, lane, max_rows=1, max_in_flight=1, stall_after_ms=1, shed_after_ms=1)
    assert batcher.slots == 3

    async def scenario() -> list[object]:
        calls = [asyncio.ensure_future(batcher.submit({"x": np.array([float(i)])})) for i in range(3)]
        while len(entered) < 3 or not batcher.jammed():  # three calls in flight, all past shed_after
            await asyncio.sleep(0.01)
        with pytest.raises(Jammed):
            await batcher.submit({"x": np.array([9.0])})
        gate.set()
        return list(await asyncio.gather(*calls))

    try:
        answers = asyncio.run(scenario())
    finally:
        gate.set()
        lane.shutdown()
    assert [float(a[0][0]) for a in answers] == [0.0, 1.0, 2.0]  # type: ignore[index]


CRASHY = """
import ctypes
import os

import numpy as np


class Crashy:
    def predict(self, frame):
        if (frame["x1"] == 666).any():
            ctypes.string_at(0)
        if (frame["x1"] == -1).any():
            raise ValueError("negative x1")
        return np.full(len(frame), float(os.getpid()))
"""


@pytest.fixture
def spec(tmp_path: Path) -> WorkerSpec:
    source = tmp_path / "crashy.py"
    source.write_text(CRASHY)
    return WorkerSpec("model crashy:1", python_artifact(f"{source}:Crashy"), "python", False, None)


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    s = Spawner()
    yield s
    s.close()


def _columns(x1: float) -> dict[str, np.ndarray]:
    return {"x1": np.array([x1]), "x2": np.array([1.0])}


@pytest.mark.slow
def test_a_worker_answers_crashes_restarts_and_backs_off(
    spec: WorkerSpec, spawner: Spawner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "BACKOFF_FIRST_S", 600.0)  # the second crash in a row waits: no race
    failures: list[str] = []
    pool = ProcessPool(spec, spawner, 1, hang_after_s=60, on_failure=failures.append)
    try:
        pool.start()
        first = int(pool.score(_columns(1.0))[0][0])
        assert first != os.getpid() and pool.pids() == [first]
        with pytest.raises(ValueError, match="negative x1"):  # the model's own error, named as its own
            pool.score(_columns(-1.0))
        with pytest.raises(WorkerCrashed, match="SIGSEGV"):
            pool.score(_columns(666.0))
        assert failures == ["crash"]
        # The restart begins at once, in the background; a call meanwhile is told so (503), or waits for it.
        second = until(lambda: _answer_or_none(pool))
        assert second != first
        with pytest.raises(WorkerCrashed):
            pool.score(_columns(666.0))
        until(lambda: _crashes(pool))  # a fresh worker crashes again, with no answer between: backoff
        with pytest.raises(ModelUnavailable, match="2 failures in a row") as info:
            pool.score(_columns(1.0))
        assert info.value.status_code == 503 and int(info.value.headers["Retry-After"]) >= 1
        assert failures == ["crash"] * 3
    finally:
        pool.close(now=True)
    assert pool.pids() == []


def _crashes(pool: ProcessPool) -> bool:
    try:
        pool.score(_columns(666.0))
    except WorkerCrashed:
        return True
    except ModelUnavailable:  # still restarting
        return False
    raise AssertionError("the model did not crash")


def _answer_or_none(pool: ProcessPool) -> int | None:
    try:
        return int(pool.score(_columns(1.0))[0][0])
    except ModelUnavailable:
        return None


@pytest.mark.slow
def test_nothing_is_spawned_once_the_spawner_is_closed(spec: WorkerSpec, spawner: Spawner) -> None:
    worker = ProcessWorker(spec, spawner, hang_after_s=60)
    spawner.close()
    with pytest.raises(ModelUnavailable, match="shutting down"):
        worker.call(_columns(1.0))
    assert worker.pid is None
