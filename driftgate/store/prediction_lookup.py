"""Finding stored prediction rows and their labels (store/predictions.py): by id, newest first or
page by page in the log's order, and the labels of a stored row (its ids all start with its key)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from driftgate.core.ids import WHOLE, split_id
from driftgate.store import tables as t

CHUNK = 500  # ids or keys per IN (...) look-up, well under SQLite's bound-parameter limit
_B = t.prediction_batches
_L = t.labels
# Every column but the inputs: readers that only count, compare or score skip decoding them.
NO_INPUTS = [c for c in _B.c if c.name != "inputs"]
# A stored row's labels: ids that start with its key. Hex ids sort below key + "g"; a key that is a
# whole id (`ids.WHOLE`) matches only itself.
LABEL_OF_BATCH = and_(
    _L.c.prediction_id >= _B.c.batch_key,
    _L.c.prediction_id < _B.c.batch_key + "g",
    or_(_B.c.first_row != WHOLE, _L.c.prediction_id == _B.c.batch_key),
)


def locate(
    conn: Connection, ids: Sequence[str], *columns: Any, where: Iterable[Any] = ()
) -> dict[str, tuple[Any, int]]:
    """{id: (its stored row, with `columns`; its index there)} for those of `ids` that are stored and
    match `where`."""
    by_key: dict[str, list[tuple[str, int]]] = {}
    for pid in ids:
        key, number = split_id(pid)
        by_key.setdefault(key, []).append((pid, number))
    keys = list(by_key)
    found: dict[str, tuple[Any, int]] = {}
    for start in range(0, len(keys), CHUNK):
        query = select(_B.c.batch_key, _B.c.first_row, _B.c.n_rows, *columns).where(
            _B.c.batch_key.in_(keys[start : start + CHUNK]), *where
        )
        for row in conn.execute(query):
            for pid, number in by_key[row.batch_key]:
                index = number - row.first_row if row.first_row != WHOLE else 0
                if 0 <= index < row.n_rows and (number == WHOLE) == (row.first_row == WHOLE):
                    found[pid] = (row, index)
    return found


def rows_after(after: tuple[float, str]) -> Any:
    """Keyset pagination: rows after (ts, key) in the log's order."""
    return or_(_B.c.ts > after[0], and_(_B.c.ts == after[0], _B.c.batch_key > after[1]))


def newest_rows(conn: Connection, query: Any, rows: int | None) -> list[Any]:
    """Stored rows from `query` (newest first) until they hold `rows` predictions, oldest first."""
    stored = list(conn.execute(query).all()) if rows is None else first_rows(conn, query, rows)
    stored.reverse()
    return stored


def first_rows(conn: Connection, query: Any, rows: int) -> list[Any]:
    """Stored rows from `query`, in its order, until they hold at least `rows` predictions."""
    out: list[Any] = []
    held = 0
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(query.limit(rows))
    for row in result:
        out.append(row)
        held += row.n_rows
        if held >= rows:
            break
    result.close()
    return out


def labels_where(conn: Connection, where: Sequence[Any]) -> dict[str, tuple[Any, float]]:
    """{prediction id: (label, when it arrived)} for the stored rows matching `where`."""
    query = select(_L.c.prediction_id, _L.c.label, _L.c.ts).select_from(_B.join(_L, LABEL_OF_BATCH)).where(*where)
    return {row.prediction_id: (row.label, row.ts) for row in conn.execute(query)}


def labels_of(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Any, float]]:
    """{prediction id: (label, when it arrived)} for those of `ids` that have one."""
    out: dict[str, tuple[Any, float]] = {}
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        query = select(_L.c.prediction_id, _L.c.label, _L.c.ts).where(_L.c.prediction_id.in_(part))
        out.update((row.prediction_id, (row.label, row.ts)) for row in conn.execute(query))
    return out
