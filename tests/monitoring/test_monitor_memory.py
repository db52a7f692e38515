"""Memory of monitor runs over the log the server writes (one stored batch per 1-row request).

The soak's drift worker grew to 8 GB within one periodic run over ~22,000 labelled rows: the concept
detectors' labelled tail expanded every batch's status to 65,536 entries (512 KB per request).
Bounds here are per row, with a wide margin: a fixed cost per batch shows as hundreds of KB a row.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from driftgate.core.ids import new_ids
from driftgate.core.refs import VersionRef
from driftgate.monitoring.live import LiveDrift
from driftgate.monitoring.monitor import Monitor
from driftgate.registry.registry import Registration, register
from driftgate.serving.runtime import ModelCache
from driftgate.store import Store
from tests.conftest import Artifacts

T = TypeVar("T")
ROWS = 300
RUNS = 6
MAX_HELD_PER_RUN = 32 * 1024  # bytes still allocated after a run, over the previous run's
MAX_PEAK_PER_ROW = 32 * 1024  # bytes; the fixed 65,536-status expansion alone was 512 KB a row


def _log_requests(store: Store, n: int, start: float) -> list[str]:
    """`n` one-row requests as the server logs them (ids of the batch-key form), all labelled."""
    ids = [new_ids(1)[0] for _ in range(n)]
    store.predictions.write(
        [
            {"id": pid, "endpoint": "clf", "model": "clf", "version": 1, "role": "primary", "ts": start + i,
             "inputs": {"x1": 0.1 * (i % 7), "x2": 3.0, "colour": "red"}, "output": i % 2,
             "probabilities": [0.4, 0.6], "latency_ms": 1.0, "status": "ok"}
            for i, pid in enumerate(ids)
        ]
    )  # fmt: skip
    store.predictions.add_labels("clf", [(pid, 1) for pid in ids])
    return ids


def _peak(work: Callable[[], T]) -> tuple[T, int]:
    """`work()` and the most memory Python allocated during it above what was held before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = work()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_labelled_tail_memory_is_per_row_not_per_request(store: Store) -> None:
    _log_requests(store, ROWS, start=1000.0)
    tail, peak = _peak(lambda: store.predictions.labelled_tail("clf", model="clf", version=1, limit=10_000))
    assert len(tail) == ROWS and {r["status"] for r in tail} == {"ok"}
    assert peak < ROWS * MAX_PEAK_PER_ROW, f"{peak / ROWS / 1024:.0f} KB per row"


def test_repeated_monitor_runs_stay_bounded(store: Store, artifacts: Artifacts) -> None:
    """Periodic runs over successive windows, in-process (the drift worker's child runs the same
    `Monitor.compute`): each run's peak is bounded per row read, and what stays allocated after a run
    does not grow with the runs (no cache keyed by the window)."""
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"))
    version = ModelCache(store).get(VersionRef("clf", 1))
    live = LiveDrift(store)
    held: list[int] = []
    tracemalloc.start()
    try:
        for run in range(RUNS):
            start = 10_000.0 * (run + 1)
            _log_requests(store, ROWS, start)
            monitor = Monitor(store, live, concept_history=ROWS * 4)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            report, _ = monitor.compute("clf", version, since=start, until=start + ROWS, trigger="periodic")
            peak = tracemalloc.get_traced_memory()[1] - before
            assert report["window"]["rows"] == ROWS and report["concept_drift"] is not None
            # The window's rows and the labelled history before it (concept_history + the window's rows).
            read = ROWS + min(ROWS * (run + 1), ROWS * 5)
            assert peak < read * MAX_PEAK_PER_ROW, f"run {run}: {peak / read / 1024:.0f} KB per row read"
            del report, monitor
            gc.collect()
            held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    # From the second run on (the first fills SQLAlchemy's statement cache and the reference cache): a
    # few KB a run; anything kept per window (its rows, a frame) would be hundreds of KB.
    growth = held[-1] - held[1]
    assert growth < (RUNS - 2) * MAX_HELD_PER_RUN, f"{growth / 1024:.0f} KB kept over {RUNS - 2} runs"
