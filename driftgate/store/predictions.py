"""The prediction log and the labels that arrive later, joined by prediction id.

The log stores one row per request (`prediction_batches`; `driftgate.core.rows` encodes and
expands them): rows arrive as tuples in `driftgate.core.rows.COLUMNS` order with JSON already
encoded and are bulk-loaded, SQLite with one `executemany` in one transaction, PostgreSQL with `COPY`.
Writes are idempotent: a row whose key is already stored (a replayed spool file) is skipped. Readers
expand stored rows into one mapping per prediction. Labels stay one row per prediction id; a stored
row's labels are found by a range scan of the labels' key, since its ids all start with its key.
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

from driftgate.core.ids import WHOLE, batch_ids, split_id
from driftgate.core.rows import (
    COLUMNS,
    REVIEW_STATUSES,
    Row,
    decode_list,
    decode_statuses,
    expand,
    from_prediction,
)
from driftgate.store import tables as t
from driftgate.store.health import StoreUnavailable, is_unavailable

# Look-ups live in prediction_lookup.py; importable from here as before.
from driftgate.store.prediction_lookup import (
    CHUNK,
    LABEL_OF_BATCH,
    NO_INPUTS,
    first_rows,
    labels_of,
    labels_where,
    locate,
    newest_rows,
    rows_after,
)

__all__ = ["CHUNK", "NO_INPUTS", "PredictionRepo", "labels_of", "locate", "newest_rows", "store_unavailable"]

F = TypeVar("F", bound=Callable[..., Any])
_COLUMN_LIST = ", ".join(COLUMNS)
_SQLITE_INSERT = f"INSERT OR IGNORE INTO prediction_batches ({_COLUMN_LIST}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_PG_STAGE = "_driftgate_batches_in"
_B = t.prediction_batches
_L = t.labels


def store_unavailable(method: F) -> F:
    """A database that cannot be reached becomes `StoreUnavailable` (503 with Retry-After), not a 500
    with a traceback; feedback must answer "retry", never "unknown", when the store cannot confirm."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DBAPIError as exc:
            if is_unavailable(exc):
                raise StoreUnavailable() from None
            raise

    return wrapper  # type: ignore[return-value]


class PredictionRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._upsert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def write(self, predictions: Sequence[dict[str, Any]]) -> None:
        """Write predictions given one by one as mappings (decoded JSON documents); see `write_rows`."""
        self.write_rows([from_prediction(p) for p in predictions], replay=True)

    def write_rows(self, rows: Sequence[Row], *, replay: bool = False) -> None:
        """Bulk-load encoded rows in one transaction; keys already stored are skipped.

        `replay=False` says duplicates are unlikely: PostgreSQL then copies straight into the table
        and only falls back to copy-into-staging + `ON CONFLICT DO NOTHING` when a key clashes.
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
                        _copy_rows(cur, "prediction_batches", rows)
                        cur.execute("RELEASE SAVEPOINT driftgate_copy")
                        return
                    except pg_errors.UniqueViolation:
                        cur.execute("ROLLBACK TO SAVEPOINT driftgate_copy")
                cur.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGE} (LIKE prediction_batches) ON COMMIT DELETE ROWS"
                )
                _copy_rows(cur, _PG_STAGE, rows)
                cur.execute(
                    f"INSERT INTO prediction_batches ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_PG_STAGE} "
                    "ON CONFLICT (batch_key) DO NOTHING"
                )

    @store_unavailable
    def known_ids(self, endpoint: str, ids: Sequence[str]) -> set[str]:
        with self.engine.connect() as conn:
            return set(locate(conn, ids, where=[_B.c.endpoint == endpoint]))

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
        where = self._filters(endpoint, since, until, None, role)
        query = select(_B).where(*where).order_by(_B.c.ts.desc(), _B.c.batch_key.desc())
        with self.engine.connect() as conn:
            stored = newest_rows(conn, query, last)
            if not stored:
                return []
            rows = [p for row in stored for p in expand(row._asdict())]
            if last is not None:
                rows = rows[-last:]
            labels = labels_where(conn, [*where, _B.c.ts >= rows[0]["ts"]])
        for p in rows:
            p["label"] = labels.get(p["id"], (None, None))[0]
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
        query = (
            select(
                _B.c.batch_key,
                _B.c.first_row,
                _B.c.n_rows,
                _B.c.ts,
                _B.c.outputs,
                _B.c.status,
                _L.c.prediction_id,
                _L.c.label,
                _L.c.ts.label("label_ts"),
            )
            .select_from(_B.join(_L, LABEL_OF_BATCH))
            .where(*self._filters(endpoint, None, until, version, role), _B.c.model == model)
            .order_by(_B.c.ts.desc(), _L.c.prediction_id.desc())
            .limit(limit)
        )
        decoded: dict[str, tuple[list[Any] | None, list[str]]] = {}
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                if row.batch_key not in decoded:  # the rows of one request share a decoded document
                    # Statuses as many as the batch holds: a fixed 65,536 cost 512 KB per one-row request,
                    # held until the query ended (the drift worker reached 8 GB on a 22,000-row run).
                    decoded[row.batch_key] = (decode_list(row.outputs), decode_statuses(row.status, row.n_rows))
                outputs, statuses = decoded[row.batch_key]
                index = 0 if row.first_row == WHOLE else split_id(row.prediction_id)[1] - row.first_row
                out.append(
                    {
                        "id": row.prediction_id,
                        "ts": row.ts,
                        "output": None if outputs is None else outputs[index],
                        "status": statuses[index],
                        "label": row.label,
                        "label_ts": row.label_ts,
                    }
                )
        out.reverse()
        return out

    def count(self, endpoint: str | None = None) -> int:
        query = select(func.coalesce(func.sum(_B.c.n_rows), 0))
        if endpoint is not None:
            query = query.where(_B.c.endpoint == endpoint)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def pending_review(self, endpoint: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """Predictions deferred to a person that have no label yet, oldest first."""
        # "audit": answered under `governed` automation, queued for a person to confirm afterwards.
        base = select(*_B.c).where(_B.c.review > 0).order_by(_B.c.ts, _B.c.batch_key).limit(CHUNK)
        if endpoint is not None:
            base = base.where(_B.c.endpoint == endpoint)
        out: list[dict[str, Any]] = []
        after: tuple[float, str] | None = None
        with self.engine.connect() as conn:
            while len(out) < limit:
                query = base if after is None else base.where(rows_after(after))
                stored = conn.execute(query).all()
                if not stored:
                    break
                waiting = [p for row in stored for p in expand(row._asdict()) if p["status"] in REVIEW_STATUSES]
                labelled = labels_of(conn, [p["id"] for p in waiting])
                out.extend(p for p in waiting if p["id"] not in labelled)
                after = (stored[-1].ts, stored[-1].batch_key)
        return [{k: p[k] for k in _REVIEW_COLUMNS} for p in out[:limit]]

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            found = locate(conn, [prediction_id], *[c for c in _B.c if c.name not in _KEY_COLUMNS])
        if prediction_id not in found:
            return None
        row, index = found[prediction_id]
        return expand(row._asdict())[index]

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
        """Predictions matching; with `limit`, counting stops there (an "any?" or "more than N?" answer
        reads at most `limit` index entries, where a full count of a busy minute reads thousands)."""
        where = self._filters(endpoint, since, until, version, role)
        if model is not None:
            where.append(_B.c.model == model)
        if limit is None:
            query = select(func.coalesce(func.sum(_B.c.n_rows), 0)).where(*where)
        else:
            held = select(_B.c.n_rows).where(*where).limit(limit).subquery()
            query = select(func.coalesce(func.sum(held.c.n_rows), 0))
        with self.engine.connect() as conn:
            total = int(conn.execute(query).scalar() or 0)
        return total if limit is None else min(total, limit)

    @staticmethod
    def _filters(
        endpoint: str, since: float | None, until: float | None, version: int | None, role: str | None
    ) -> list[Any]:
        where: list[Any] = [_B.c.endpoint == endpoint]
        if since is not None:
            where.append(_B.c.ts >= since)
        if until is not None:
            where.append(_B.c.ts < until)
        if version is not None:
            where.append(_B.c.version == version)
        if role is not None:
            where.append(_B.c.role == role)
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
        """Logged predictions with their label (and its time), oldest first, in chunks of whole stored
        rows, about `chunk_rows` predictions each (keyset pagination)."""
        where = self._filters(endpoint, since, until, version, role)
        base = select(_B).where(*where).order_by(_B.c.ts, _B.c.batch_key)
        after: tuple[float, str] | None = None
        while True:
            query = base if after is None else base.where(rows_after(after))
            with self.engine.connect() as conn:
                stored = first_rows(conn, query, chunk_rows)
                if not stored:
                    return
                chunk = [p for row in stored for p in expand(row._asdict())]
                labels = labels_where(conn, [*where, _B.c.ts >= stored[0].ts, _B.c.ts <= stored[-1].ts])
            for p in chunk:
                p["label"], p["label_ts"] = labels.get(p["id"], (None, None))
            yield chunk
            after = (stored[-1].ts, stored[-1].batch_key)

    def label_sample(self, endpoint: str) -> Any:
        """One stored label of the endpoint (None if none): tells exporters the label's type."""
        with self.engine.connect() as conn:
            return conn.execute(select(_L.c.label).where(_L.c.endpoint == endpoint).limit(1)).scalar()

    def delete_before(self, cutoff: float, endpoint: str | None = None, chunk_rows: int = 10_000) -> int:
        """Delete log rows older than `cutoff` (epoch seconds), their labels and their outcome events;
        returns the predictions deleted."""
        ev = t.outcome_events
        total = 0
        while True:
            query = select(_B.c.batch_key, _B.c.first_row, _B.c.n_rows).where(_B.c.ts < cutoff).limit(CHUNK)
            if endpoint is not None:
                query = query.where(_B.c.endpoint == endpoint)
            with self.engine.begin() as conn:
                stored = conn.execute(query).all()
                if not stored:
                    return total
                ids = [pid for row in stored for pid in batch_ids(row.batch_key, row.first_row, row.n_rows)]
                for start in range(0, len(ids), CHUNK):
                    part = ids[start : start + CHUNK]
                    conn.execute(delete(_L).where(_L.c.prediction_id.in_(part)))
                    conn.execute(delete(ev).where(ev.c.prediction_id.in_(part)))
                conn.execute(delete(_B).where(_B.c.batch_key.in_([row.batch_key for row in stored])))
            total += len(ids)


_KEY_COLUMNS = frozenset({"batch_key", "first_row", "n_rows"})
_REVIEW_COLUMNS = ("id", "endpoint", "model", "version", "ts", "inputs", "output", "probabilities", "status")


def _copy_rows(cursor: Any, table: str, rows: Sequence[Row]) -> None:
    with cursor.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
