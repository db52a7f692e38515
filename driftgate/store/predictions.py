"""The prediction log and the labels that arrive later, joined by prediction id.

Log rows arrive as tuples in `driftgate.records.rows.COLUMNS` order with JSON already encoded,
and are bulk-loaded: SQLite with one `executemany` in one transaction, PostgreSQL with `COPY`.
Writes are idempotent: a row whose id is already stored (a replayed spool file) is skipped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from driftgate.errors import NotReady
from driftgate.records.rows import COLUMNS, Row, from_dict
from driftgate.store import tables as t

F = TypeVar("F", bound=Callable[..., Any])
_COLUMN_LIST = ", ".join(COLUMNS)
_SQLITE_INSERT = f"INSERT OR IGNORE INTO predictions ({_COLUMN_LIST}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_PG_STAGE = "_driftgate_predictions_in"


def store_unavailable(method: F) -> F:
    """A database that cannot be reached becomes `NotReady` (503), not a 500 with a traceback."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DBAPIError as exc:
            if exc.connection_invalidated or _is_connection_error(exc):
                raise NotReady("the store is unavailable; retry shortly") from None
            raise

    return wrapper  # type: ignore[return-value]


def _is_connection_error(exc: DBAPIError) -> bool:
    orig = exc.orig
    name = type(orig).__name__ if orig is not None else ""
    # psycopg: OperationalError (connection refused/closed, admin shutdown); sqlite: locked/IO.
    return name in {"OperationalError", "InterfaceError", "AdminShutdown", "CannotConnectNow"}


class PredictionRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._upsert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows given as mappings (decoded JSON documents); see `write_rows`."""
        self.write_rows([from_dict(r) for r in rows], replay=True)

    def write_rows(self, rows: Sequence[Row], *, replay: bool = False) -> None:
        """Bulk-load encoded rows in one transaction; ids already stored are skipped.

        `replay=False` says duplicates are unlikely: PostgreSQL then copies straight into the table
        and only falls back to copy-into-staging + `ON CONFLICT DO NOTHING` when an id clashes.
        """
        if not rows:
            return
        if self.engine.dialect.name == "postgresql":
            self._copy(rows, replay)
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql(_SQLITE_INSERT, list(rows))

    def _copy(self, rows: Sequence[Row], replay: bool) -> None:
        from psycopg import errors as pg_errors

        with self.engine.begin() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None  # a live psycopg connection inside begin()
            with raw.cursor() as cur:
                if not replay:
                    cur.execute("SAVEPOINT driftgate_copy")
                    try:
                        _copy_rows(cur, "predictions", rows)
                        cur.execute("RELEASE SAVEPOINT driftgate_copy")
                        return
                    except pg_errors.UniqueViolation:
                        cur.execute("ROLLBACK TO SAVEPOINT driftgate_copy")
                cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGE} (LIKE predictions) ON COMMIT DELETE ROWS")
                _copy_rows(cur, _PG_STAGE, rows)
                cur.execute(
                    f"INSERT INTO predictions ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_PG_STAGE} "
                    "ON CONFLICT (id) DO NOTHING"
                )

    @store_unavailable
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

    @store_unavailable
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
        role: str | None = "primary",
    ) -> list[dict[str, Any]]:
        """Logged predictions with their latest label, newest last."""
        p, lab = t.predictions, t.labels
        query = (
            select(p, lab.c.label)
            .select_from(p.outerjoin(lab, lab.c.prediction_id == p.c.id))
            .where(*self._filters(endpoint, since, until, None, role))
            .order_by(p.c.ts.desc(), p.c.id.desc())
        )
        if last is not None:
            query = query.limit(last)
        with self.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
        rows.reverse()
        return rows

    def labelled_tail(
        self,
        endpoint: str,
        *,
        model: str,
        version: int,
        until: float | None = None,
        limit: int = 5000,
        role: str = "primary",
    ) -> list[dict[str, Any]]:
        """The newest `limit` labelled predictions of one version before `until`, oldest first, with
        the label and when it arrived (`label_ts`): the error stream of concept-drift detectors."""
        p, lab = t.predictions, t.labels
        query = (
            select(p.c.id, p.c.ts, p.c.output, p.c.status, lab.c.label, lab.c.ts.label("label_ts"))
            .select_from(p.join(lab, lab.c.prediction_id == p.c.id))
            .where(*self._filters(endpoint, None, until, version, role), p.c.model == model)
            .order_by(p.c.ts.desc(), p.c.id.desc())
            .limit(limit)
        )
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
            select(
                p.c.id,
                p.c.endpoint,
                p.c.model,
                p.c.version,
                p.c.ts,
                p.c.inputs,
                p.c.output,
                p.c.probabilities,
                p.c.status,
            )
            .select_from(p.outerjoin(lab, lab.c.prediction_id == p.c.id))
            # "audit": answered under `governed` automation, queued for a person to confirm afterwards.
            .where(p.c.status.in_(("review", "audit")), lab.c.prediction_id.is_(None))
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

    def count_range(
        self,
        endpoint: str,
        *,
        since: float | None = None,
        until: float | None = None,
        version: int | None = None,
        role: str | None = "primary",
        model: str | None = None,
        limit: int | None = None,
    ) -> int:
        """Rows matching; with `limit`, counting stops there (an "any?" or "more than N?" answer reads at
        most `limit` index entries, where a full count of a busy minute reads hundreds of thousands)."""
        p = t.predictions
        filtered = select(p.c.id if limit is not None else func.count()).where(
            *self._filters(endpoint, since, until, version, role)
        )
        if model is not None:
            filtered = filtered.where(p.c.model == model)
        query = filtered if limit is None else select(func.count()).select_from(filtered.limit(limit).subquery())
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    @staticmethod
    def _filters(
        endpoint: str, since: float | None, until: float | None, version: int | None, role: str | None
    ) -> list[Any]:
        p = t.predictions
        where: list[Any] = [p.c.endpoint == endpoint]
        if since is not None:
            where.append(p.c.ts >= since)
        if until is not None:
            where.append(p.c.ts < until)
        if version is not None:
            where.append(p.c.version == version)
        if role is not None:
            where.append(p.c.role == role)
        return where

    def iter_with_labels(
        self,
        endpoint: str,
        *,
        since: float | None = None,
        until: float | None = None,
        version: int | None = None,
        role: str | None = "primary",
        chunk_rows: int = 20_000,
    ) -> Iterator[list[dict[str, Any]]]:
        """Logged rows with their label (and its time), oldest first, in chunks (keyset pagination)."""
        p, lab = t.predictions, t.labels
        base = (
            select(p, lab.c.label, lab.c.ts.label("label_ts"))
            .select_from(p.outerjoin(lab, lab.c.prediction_id == p.c.id))
            .where(*self._filters(endpoint, since, until, version, role))
            .order_by(p.c.ts, p.c.id)
            .limit(chunk_rows)
        )
        after: tuple[float, str] | None = None
        while True:
            query = base
            if after is not None:
                query = query.where((p.c.ts > after[0]) | ((p.c.ts == after[0]) & (p.c.id > after[1])))
            with self.engine.connect() as conn:
                chunk = [r._asdict() for r in conn.execute(query)]
            if not chunk:
                return
            yield chunk
            if len(chunk) < chunk_rows:
                return
            after = (chunk[-1]["ts"], chunk[-1]["id"])

    def label_sample(self, endpoint: str) -> Any:
        """One stored label of the endpoint (None if none): tells exporters the label's type."""
        with self.engine.connect() as conn:
            return conn.execute(select(t.labels.c.label).where(t.labels.c.endpoint == endpoint).limit(1)).scalar()

    def delete_before(self, cutoff: float, endpoint: str | None = None, chunk_rows: int = 10_000) -> int:
        """Delete log rows older than `cutoff` (epoch seconds), their labels and their outcome events;
        returns rows deleted."""
        p, lab, ev = t.predictions, t.labels, t.outcome_events
        total = 0
        while True:
            query = select(p.c.id).where(p.c.ts < cutoff).limit(chunk_rows)
            if endpoint is not None:
                query = query.where(p.c.endpoint == endpoint)
            with self.engine.begin() as conn:
                ids = list(conn.execute(query).scalars())
                if not ids:
                    return total
                conn.execute(delete(lab).where(lab.c.prediction_id.in_(ids)))
                conn.execute(delete(ev).where(ev.c.prediction_id.in_(ids)))
                conn.execute(delete(p).where(p.c.id.in_(ids)))
            total += len(ids)


def _copy_rows(cursor: Any, table: str, rows: Sequence[Row]) -> None:
    with cursor.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
