"""Monitor output: metric points as time series, and full monitor reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, select

from driftgate.core.points import MetricPoint
from driftgate.store import tables as t
from driftgate.store.database import inserted_id


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
        return inserted_id(result)

    def latest_report(self, endpoint: str) -> dict[str, Any] | None:
        r = t.monitor_reports
        query = select(r.c.report).where(r.c.endpoint == endpoint).order_by(r.c.ts.desc(), r.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return dict(value) if value is not None else None

    def delete_before(self, cutoff: float, endpoint: str | None = None, chunk_rows: int = 10_000) -> tuple[int, int]:
        """Delete metric points and monitor reports older than `cutoff` (epoch seconds), except each
        endpoint's newest report, which `GET .../drift` answers from; returns (points, reports) deleted.
        One series at a time, so every query runs on its index, in chunks: short transactions beside
        a serving store's writers."""
        m, r = t.monitoring_points, t.monitor_reports
        series = select(m.c.endpoint, m.c.metric).distinct()
        names = select(r.c.endpoint).distinct()
        if endpoint is not None:
            series, names = series.where(m.c.endpoint == endpoint), names.where(r.c.endpoint == endpoint)
        newest = select(r.c.id).order_by(r.c.ts.desc(), r.c.id.desc()).limit(1)  # as latest_report reads
        with self.engine.connect() as conn:
            pairs = conn.execute(series).all()
            keep = {
                name: conn.execute(newest.where(r.c.endpoint == name)).scalar()
                for name in conn.execute(names).scalars()
            }
        points = sum(
            self._delete_chunked(m, (m.c.endpoint == e, m.c.metric == metric, m.c.ts < cutoff), chunk_rows)
            for e, metric in pairs
        )
        reports = sum(
            self._delete_chunked(r, (r.c.endpoint == e, r.c.ts < cutoff, r.c.id != kept), chunk_rows)
            for e, kept in keep.items()
        )
        return points, reports

    def _delete_chunked(self, table: Any, where: tuple[Any, ...], chunk_rows: int) -> int:
        deleted = 0
        while True:
            chunk = select(table.c.id).where(*where).limit(chunk_rows).scalar_subquery()
            with self.engine.begin() as conn:
                n = conn.execute(delete(table).where(table.c.id.in_(chunk))).rowcount
            deleted += n
            if n < chunk_rows:
                return deleted


def _point(row: Any) -> MetricPoint:
    return MetricPoint(
        endpoint=row.endpoint,
        metric=row.metric,
        value=row.value,
        ts=row.ts,
        version=row.version,
        detail=dict(row.detail or {}),
    )
