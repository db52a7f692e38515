"""The monitor against a real store (SQLite and PostgreSQL): the replica claim of scheduled runs."""

from __future__ import annotations

from driftgate.monitoring.live import LiveDrift
from driftgate.monitoring.monitor import RUN_METRIC, Monitor
from driftgate.store import Store


def _log(store: Store, ts: float, n: int = 3) -> None:
    store.predictions.write(
        [
            {"id": f"p{ts}-{i}", "endpoint": "e", "model": "m", "version": 1, "role": "primary", "ts": ts,
             "inputs": {"x": 1.0}, "output": 1, "latency_ms": 1.0, "status": "ok"}
            for i in range(n)
        ]
    )  # fmt: skip


def test_one_scheduled_run_per_interval_across_replicas(store: Store) -> None:
    a, b = Monitor(store, LiveDrift(store)), Monitor(store, LiveDrift(store))
    assert a.claim("e", interval=60, now=1000.0) is None  # no traffic, no run
    _log(store, 990.0)
    assert a.claim("e", interval=60, now=1000.0) == (940.0, 1000.0)
    assert b.claim("e", interval=60, now=1030.0) is None  # a ran 30 s ago
    assert b.claim("e", interval=60, now=1055.0) is None  # due, but no traffic since a's run
    _log(store, 1050.0)
    assert b.claim("e", interval=60, now=1055.0) == (995.0, 1055.0)
    runs = store.monitoring.series("e", RUN_METRIC)
    assert [p.ts for p in runs] == [1000.0, 1055.0] and runs[0].detail["replica"] == a.replica
