"""Monitor output: metric points as time series, and full monitor reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from driftgate.monitoring.points import MetricPoint
from driftgate.store import tables as t


def _value(value: float | None) -> float | None:
    # NaN and infinities are not JSON and not comparable by alert rules: store them as "no value".
    return None if value is None or not math.isfinite(value) else float(value)


class MonitoringRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_points(self, points: Sequence[MetricPoint]) -> None:
        """Bulk insert (one `executemany` in one transaction)."""
        if not points:
            return
        rows = [
            {
                "endpoint": p.endpoint,
                "version": p.version,
                "metric": p.metric,
                "ts": float(p.ts),
                "value": _value(p.value),
                "detail": p.detail or {},
            }
            for p in points
        ]
        with self.engine.begin() as conn:
            conn.execute(t.monitoring_points.insert(), rows)

    def series(
        self,
        endpoint: str,
        metric: str,
        *,
        since: float | None = None,
        until: float | None = None,
        version: int | None = None,
        limit: int = 10_000,
    ) -> list[MetricPoint]:
        """Points of one metric, oldest first; with `limit`, the newest `limit` of them."""
        m = t.monitoring_points
        query = select(m).where(m.c.endpoint == endpoint, m.c.metric == metric)
        if since is not None:
            query = query.where(m.c.ts >= since)
        if until is not None:
            query = query.where(m.c.ts < until)
        if version is not None:
            query = query.where(m.c.version == version)
        query = query.order_by(m.c.ts.desc(), m.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_point(r) for r in reversed(rows)]

    def metrics_available(self, endpoint: str) -> list[str]:
        m = t.monitoring_points
        with self.engine.connect() as conn:
            return sorted(conn.execute(select(m.c.metric).where(m.c.endpoint == endpoint).distinct()).scalars())

    def latest(self, endpoint: str, metric: str) -> list[MetricPoint]:
        """Every point of the metric's newest time stamp (several for per-class or per-feature metrics)."""
        m = t.monitoring_points
        newest = select(func.max(m.c.ts)).where(m.c.endpoint == endpoint, m.c.metric == metric).scalar_subquery()
        query = select(m).where(m.c.endpoint == endpoint, m.c.metric == metric, m.c.ts == newest).order_by(m.c.id)
        with self.engine.connect() as conn:
            return [_point(r) for r in conn.execute(query).all()]

    def last_ts(self, endpoint: str, metric: str) -> float | None:
        m = t.monitoring_points
        query = select(func.max(m.c.ts)).where(m.c.endpoint == endpoint, m.c.metric == metric)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return float(value) if value is not None else None

    def add_report(self, endpoint: str, version: int | None, ts: float, report: dict[str, Any]) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                t.monitor_reports.insert().values(endpoint=endpoint, version=version, ts=ts, report=report)
            )
        return int(result.inserted_primary_key[0])

    def latest_report(self, endpoint: str) -> dict[str, Any] | None:
        r = t.monitor_reports
        query = select(r.c.report).where(r.c.endpoint == endpoint).order_by(r.c.ts.desc(), r.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return dict(value) if value is not None else None


def _point(row: Any) -> MetricPoint:
    return MetricPoint(
        endpoint=row.endpoint,
        metric=row.metric,
        value=row.value,
        ts=row.ts,
        version=row.version,
        detail=dict(row.detail or {}),
    )
