"""Reading stored rows back: one mapping per prediction, from every form the log has ever written.

Today's rows have the form `driftgate.core.row_format` describes. Older ones are only read, never
written: inputs as a list of row objects (small requests, and predictions stored one per row before
batches), a numeric input column packed alone (no `"columns"`), probabilities as JSON lists. Each
decodes through the same two steps as today's (`unpack` passes a JSON list through), so the readers
(store queries, exports, drift) see one shape. `from_legacy` turns a per-prediction row (old spool
files, migration 0005) into a stored row of that older form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from driftgate.core.ids import batch_ids, split_id
from driftgate.core.row_format import COLUMNS, REVIEW_STATUSES, Row, dumps, unpack


def decode_list(text: str | None) -> Any:
    """A stored JSON column (outputs, probabilities, parents) as lists; None stays None."""
    return None if text is None else unpack(orjson.loads(text))


def decode_statuses(status: str, n: int) -> list[str]:
    """A stored row's status column as one status per row."""
    return orjson.loads(status) if status.startswith("[") else [status] * n


def decode_inputs(text: str | None, n: int) -> list[Any] | None:
    """A stored row's inputs as one mapping per prediction (None stays None)."""
    if text is None:
        return None
    document = orjson.loads(text)
    if isinstance(document, list):  # an older row: the row objects themselves
        return document
    blocks: dict[str, Any] = {}
    for column in document.values():
        if isinstance(column, dict) and "columns" in column:
            blocks.update(zip(column["columns"], unpack(column), strict=True))
    names = list(document)
    columns = [blocks[name] if name in blocks else unpack(column) for name, column in document.items()]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)] or [{} for _ in range(n)]


def expand(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A stored row's predictions as mappings of `PREDICTION_COLUMNS`, JSON decoded; the columns the
    row mapping lacks (a reader that did not select `inputs`, say) are None."""
    n = row["n_rows"]
    ids = batch_ids(row["batch_key"], row["first_row"], n)
    inputs = decode_inputs(row.get("inputs"), n)
    outputs = decode_list(row.get("outputs"))
    probabilities = decode_list(row.get("probabilities"))
    parents = decode_list(row.get("parents"))
    statuses = decode_statuses(row["status"], n)
    shared = {c: row.get(c) for c in ("endpoint", "model", "version", "role", "ts")}
    return [
        {
            "id": ids[i],
            **shared,
            "inputs": None if inputs is None else inputs[i],
            "output": None if outputs is None else outputs[i],
            "probabilities": None if probabilities is None else probabilities[i],
            "latency_ms": row.get("latency_ms"),
            "status": statuses[i],
            "error": row.get("error"),
            "parent_id": None if parents is None else parents[i],
        }
        for i in range(n)
    ]


def as_dicts(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Stored rows' predictions, decoded (for tests and tools)."""
    return [p for row in rows for p in expand(dict(zip(COLUMNS, row, strict=True)))]


def from_legacy(row: Row) -> Row:
    """The stored row of one prediction stored the old way: a tuple in `PREDICTION_COLUMNS` order
    with its JSON encoded (spool files and logs from before batches). Its JSON is wrapped, not decoded
    (a list of one row object), so carrying an old log over costs no re-encoding."""
    pid, endpoint, model, version, role, ts, inputs, output, probabilities, latency, status, error, *rest = row
    parent = rest[0] if rest else None
    key, first = split_id(pid)
    return (
        key,
        first,
        1,
        endpoint,
        model,
        version,
        role,
        ts,
        latency,
        status,
        int(status in REVIEW_STATUSES),
        error,
        "[" + (inputs or "{}") + "]",
        None if output is None else "[" + output + "]",
        None if probabilities is None else "[" + probabilities + "]",
        None if parent is None else dumps([parent]),
    )
