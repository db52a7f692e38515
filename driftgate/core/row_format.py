"""The stored form of the prediction log: one row per request, its columns, and the packed arrays.

A stored row holds one request's predictions (`COLUMNS`): a 100-row request is one insert and one
index entry, where a row per prediction cost ~7 us of SQLite per prediction. Its ids name it: they
share its 28-digit key and count up from `first_row` (`driftgate.core.ids`). A row is a plain tuple in
`COLUMNS` order with its JSON documents already encoded, so the same value goes to the spool file, to
SQLite's `executemany` and to PostgreSQL's `COPY` unchanged.

Rows written today (`driftgate.core.row_encode`) have one form, whatever the request's size:
- `inputs`: a JSON object of columns, in the request's column order. Numeric columns (bool, int,
  float) are packed by dtype: the first column of a dtype holds the block of all of them
  (`{"dtype", "shape": [k, n], "b64", "columns": [names]}`), the others name it (`{"in": first}`).
  Any other column is a JSON list.
- `outputs`, `parents`: JSON lists; `probabilities`: the matrix packed (`{"dtype", "shape", "b64"}`).
Older rows (a list of row objects, one numeric column packed alone, probabilities as JSON lists) are
read by `driftgate.core.row_decode` and never written any more.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

COLUMNS = (
    "batch_key",  # the first 28 hex digits its ids share
    "first_row",  # the first row's number (ids.WHOLE: the key is the one row's id)
    "n_rows",  # rows held
    "endpoint",
    "model",
    "version",
    "role",  # "primary" | "shadow"
    "ts",
    "latency_ms",
    "status",  # one status for every row, or a JSON array of them
    "review",  # rows whose status puts them in the review queue
    "error",
    "inputs",  # JSON object of columns (see the module docstring)
    "outputs",  # JSON list, one per row, or NULL (no answer)
    "probabilities",  # the matrix packed; NULL: none
    "parents",  # shadow rows: JSON list of the ids that answered the same inputs; NULL otherwise
)
Row = tuple[Any, ...]
# The log's per-prediction columns (what `expand` gives, and what logs before batches stored).
PREDICTION_COLUMNS = (
    "id",
    "endpoint",
    "model",
    "version",
    "role",
    "ts",
    "inputs",
    "output",
    "probabilities",
    "latency_ms",
    "status",
    "error",
    "parent_id",
)
REVIEW_STATUSES = ("review", "audit")


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    pd = sys.modules.get("pandas")  # no value is a pandas object unless pandas is loaded
    if pd is not None:
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        if value is pd.NA or value is pd.NaT:
            return None
    return str(value)


def dumps(value: Any) -> str:
    """JSON text; NaN and infinities become null (orjson's rule), numpy scalars become numbers."""
    return orjson.dumps(value, default=_default).decode()


def pack(values: np.ndarray, columns: str | None = None) -> str:
    """A numeric array as JSON `{"dtype", "shape", "b64"}` (+ `"columns"`, JSON text, for a block of
    inputs): its bytes in base64, ~11 characters a value where the shortest decimal text of a float64
    takes ~19, and no per-value formatting."""
    data = binascii.b2a_base64(np.ascontiguousarray(values).data, newline=False).decode("ascii")
    shape = ",".join(map(str, values.shape))
    tail = "}" if columns is None else ',"columns":' + columns + "}"
    return f'{{"dtype":"{values.dtype.str}","shape":[{shape}],"b64":"{data}"{tail}'


def unpack(document: Any) -> Any:
    """Stored values: a JSON list as it is, a packed array decoded to lists (NaN as None, like JSON)."""
    if not isinstance(document, dict):
        return document
    values = np.frombuffer(base64.b64decode(document["b64"]), dtype=np.dtype(document["dtype"]))
    values = values.reshape(document["shape"])
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return orjson.loads(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY))  # orjson: NaN -> null
    return values.tolist()


def count_rows(rows: Iterable[Row]) -> int:
    """Predictions held by stored rows (each holds a request's worth)."""
    return sum(row[2] for row in rows)
