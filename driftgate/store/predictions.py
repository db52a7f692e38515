"""The prediction log and the labels that arrive later, joined by prediction id."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from driftgate.store import tables as t


class PredictionRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._upsert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """One transaction for a batch; rows already stored (a replayed batch) are skipped."""
        if not rows:
            return
        stmt = self._upsert(t.predictions).on_conflict_do_nothing(index_elements=["id"])
        with self.engine.begin() as conn:
            conn.execute(stmt, list(rows))

    def known_ids(self, endpoint: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                found.update(
                    conn.execute(
                        select(t.predictions.c.id).where(
                            t.predictions.c.id.in_(chunk), t.predictions.c.endpoint == endpoint
                        )
                    ).scalars()
                )
        return found

    def add_labels(self, endpoint: str, labels: Iterable[tuple[str, Any]], source: str = "feedback") -> None:
        """Upsert labels: the last write for an id wins, retries are harmless."""
        now = time.time()
        rows = [
            {"prediction_id": pid, "endpoint": endpoint, "label": label, "source": source, "ts": now}
            for pid, label in labels
        ]
        if not rows:
            return
        stmt = self._upsert(t.labels)
        stmt = stmt.on_conflict_do_update(
            index_elements=["prediction_id"],
            set_={"label": stmt.excluded.label, "source": stmt.excluded.source, "ts": stmt.excluded.ts},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def window(
        self,
        endpoint: str,
        *,
        last: int | None = None,
        since: float | None = None,
        until: float | None = None,
        role: str = "primary",
    ) -> list[dict[str, Any]]:
        """Logged predictions with their latest label, newest last."""
        p, lab = t.predictions, t.labels
        query = (
            select(p, lab.c.label)
            .select_from(p.outerjoin(lab, lab.c.prediction_id == p.c.id))
            .where(p.c.endpoint == endpoint, p.c.role == role)
        )
        if since is not None:
            query = query.where(p.c.ts >= since)
        if until is not None:
            query = query.where(p.c.ts < until)
        query = query.order_by(p.c.ts.desc(), p.c.id.desc())
        if last is not None:
            query = query.limit(last)
        with self.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
        rows.reverse()
        return rows

    def count(self, endpoint: str | None = None) -> int:
        query = select(func.count()).select_from(t.predictions)
        if endpoint is not None:
            query = query.where(t.predictions.c.endpoint == endpoint)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def pending_review(self, endpoint: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """Predictions deferred to a human that have no label yet, oldest first."""
        p, lab = t.predictions, t.labels
        query = (
            select(p.c.id, p.c.endpoint, p.c.model, p.c.version, p.c.ts, p.c.inputs, p.c.output, p.c.probabilities)
            .select_from(p.outerjoin(lab, lab.c.prediction_id == p.c.id))
            .where(p.c.status == "review", lab.c.prediction_id.is_(None))
            .order_by(p.c.ts, p.c.id)
            .limit(limit)
        )
        if endpoint is not None:
            query = query.where(p.c.endpoint == endpoint)
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.predictions).where(t.predictions.c.id == prediction_id)).first()
        return row._asdict() if row is not None else None
