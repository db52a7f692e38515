"""Monitoring points and reports on SQLite and PostgreSQL alike."""

from __future__ import annotations

import math

from driftgate.core.points import MetricPoint
from driftgate.store import Store


def test_series_are_ordered_and_filtered(store: Store) -> None:
    points = [MetricPoint("e", "error_rate", i / 10, ts=100.0 + i, version=1 + i % 2) for i in range(10)]
    points.reverse()  # insertion order must not matter
    store.monitoring.add_points([*points, MetricPoint("other", "error_rate", 1.0, ts=103.0)])
    series = store.monitoring.series("e", "error_rate")
    assert [p.ts for p in series] == [100.0 + i for i in range(10)]
    assert series[3] == MetricPoint("e", "error_rate", 0.3, 103.0, 2, {})
    assert [p.ts for p in store.monitoring.series("e", "error_rate", since=102, until=105)] == [102.0, 103.0, 104.0]
    assert {p.version for p in store.monitoring.series("e", "error_rate", version=2)} == {2}
    assert [p.ts for p in store.monitoring.series("e", "error_rate", limit=3)] == [107.0, 108.0, 109.0]
    assert store.monitoring.series("e", "latency_p99_ms") == []


def test_details_none_and_nan_values(store: Store) -> None:
    store.monitoring.add_points(
        [
            MetricPoint("e", "class_share", 0.25, 5.0, 1, {"class": 0}),
            MetricPoint("e", "class_share", 0.75, 5.0, 1, {"class": 1}),
            MetricPoint("e", "request_rate", None, 5.0),
            MetricPoint("e", "mean_confidence", math.nan, 5.0),
        ]
    )
    assert store.monitoring.metrics_available("e") == ["class_share", "mean_confidence", "request_rate"]
    latest = store.monitoring.latest("e", "class_share")
    assert [(p.value, p.detail) for p in latest] == [(0.25, {"class": 0}), (0.75, {"class": 1})]
    assert store.monitoring.series("e", "mean_confidence")[0].value is None
    assert store.monitoring.last_ts("e", "request_rate") == 5.0
    assert store.monitoring.last_ts("e", "monitor_run") is None
    store.monitoring.add_points([])


def test_reports_latest_wins(store: Store) -> None:
    assert store.monitoring.latest_report("e") is None
    store.monitoring.add_report("e", 1, 10.0, {"n": 1})
    store.monitoring.add_report("e", 2, 20.0, {"n": 2, "nested": {"a": [1, 2]}})
    store.monitoring.add_report("f", 1, 30.0, {"n": 3})
    assert store.monitoring.latest_report("e") == {"n": 2, "nested": {"a": [1, 2]}}


def test_retention_deletes_old_points_and_reports_but_each_endpoints_newest_report(store: Store) -> None:
    old, new = 1_000.0, 2_000.0
    store.monitoring.add_points(
        [MetricPoint(e, m, 0.1, ts) for e in ("e", "f") for m in ("error_rate", "psi") for ts in (old, old + 1, new)]
    )
    store.monitoring.add_report("e", 1, old, {"n": "e-old"})
    store.monitoring.add_report("e", 1, new, {"n": "e-new"})
    store.monitoring.add_report("f", 1, old, {"n": "f-old-1"})
    store.monitoring.add_report("f", 1, old + 1, {"n": "f-only-old"})  # f's newest: kept though old
    # One endpoint, one row per chunk: deleting goes on past full chunks.
    assert store.monitoring.delete_before(1_500.0, endpoint="e", chunk_rows=1) == (4, 1)
    assert [p.ts for p in store.monitoring.series("e", "psi")] == [new]
    assert len(store.monitoring.series("f", "psi")) == 3
    assert store.monitoring.delete_before(1_500.0) == (4, 1)
    assert [p.ts for p in store.monitoring.series("f", "error_rate")] == [new]
    assert store.monitoring.latest_report("e") == {"n": "e-new"}
    assert store.monitoring.latest_report("f") == {"n": "f-only-old"}
    assert store.monitoring.delete_before(1_500.0) == (0, 0)


def test_apply_retention_reports_what_each_kind_lost(store: Store) -> None:
    now = 10 * 86400.0
    store.monitoring.add_points([MetricPoint("e", "psi", 0.1, now - 3 * 86400), MetricPoint("e", "psi", 0.2, now)])
    kept = store.apply_retention(now=now)
    assert kept == {"predictions": 0, "monitoring_points": 0, "monitor_reports": 0}
    assert store.apply_retention(monitoring_days=2, now=now)["monitoring_points"] == 1
    assert [p.value for p in store.monitoring.series("e", "psi")] == [0.2]
