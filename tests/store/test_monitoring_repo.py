"""Monitoring points and reports on SQLite and PostgreSQL alike."""

from __future__ import annotations

import math

from driftgate.monitoring.points import MetricPoint
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
