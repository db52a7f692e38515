"""Outcome events tied to logged predictions, and their counts per monitor window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from driftgate.core.events import OutcomeEvent
from driftgate.store import tables as t
from driftgate.store.predictions import CHUNK, locate, store_unavailable


class Target(NamedTuple):
    """The logged prediction an event is tied to."""

    ts: float
    model: str
    version: int


class RowKey(NamedTuple):
    """A prediction's place in the log's order (time, then id), as monitor windows are cut."""

    ts: float
    id: str


class EventRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    @store_unavailable
    def targets(self, endpoint: str, ids: Sequence[str]) -> dict[str, Target]:
        """The endpoint's primary predictions among `ids`. Shadow rows are not answers the application
        saw, so events cannot be tied to them."""
        b = t.prediction_batches
        with self.engine.connect() as conn:
            located = locate(
                conn, ids, b.c.ts, b.c.model, b.c.version, where=[b.c.endpoint == endpoint, b.c.role == "primary"]
            )
        return {pid: Target(float(row.ts), row.model, int(row.version)) for pid, (row, _) in located.items()}

    @store_unavailable
    def add(self, endpoint: str, events: Sequence[OutcomeEvent], targets: Mapping[str, Target]) -> None:
        """Store the events whose prediction is in `targets` (one transaction); an event already stored
        for the same prediction and name is left as it is (the first time stamp is kept)."""
        rows = []
        for e in events:
            target = targets.get(e.prediction_id)
            if target is not None:
                rows.append(
                    {
                        "prediction_id": e.prediction_id,
                        "name": e.name,
                        "endpoint": endpoint,
                        "model": target.model,
                        "version": target.version,
                        "prediction_ts": target.ts,
                        "ts": e.ts,
                    }
                )
        if not rows:
            return
        stmt = self._insert(t.outcome_events).on_conflict_do_nothing(index_elements=["prediction_id", "name"])
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def count_window(self, endpoint: str, *, model: str, version: int, first: RowKey, last: RowKey) -> dict[str, int]:
        """Events per name tied to the version's primary predictions from `first` to `last` inclusive, in
        the log's (time, id) order: exactly the rows of a monitor window, however many share a time."""
        e = t.outcome_events
        ts, pid = e.c.prediction_ts, e.c.prediction_id
        after_first = or_(ts > first.ts, and_(ts == first.ts, pid >= first.id))
        before_last = or_(ts < last.ts, and_(ts == last.ts, pid <= last.id))
        query = (
            select(e.c.name, func.count())
            .where(
                e.c.endpoint == endpoint,
                # Plain bounds first, so the (endpoint, prediction_ts) index narrows the scan.
                ts >= first.ts,
                ts <= last.ts,
                e.c.model == model,
                e.c.version == version,
                after_first,
                before_last,
            )
            .group_by(e.c.name)
        )
        with self.engine.connect() as conn:
            return {name: int(n) for name, n in conn.execute(query)}

    def for_predictions(self, ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """{prediction id: {event name: time}} for the given ids (exports, tests)."""
        e = t.outcome_events
        out: dict[str, dict[str, float]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), CHUNK):
                query = select(e.c.prediction_id, e.c.name, e.c.ts).where(
                    e.c.prediction_id.in_(list(ids[start : start + CHUNK]))
                )
                for row in conn.execute(query):
                    out.setdefault(row.prediction_id, {})[row.name] = float(row.ts)
        return out
