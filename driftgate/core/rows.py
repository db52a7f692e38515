"""Turning a `LogBatch` into stored rows: redaction first, then encoding, column by column.

A stored row holds one request's predictions (`COLUMNS`): a 100-row request is one insert and one
index entry, where a row per prediction cost ~7 us of SQLite per prediction. Its ids name it: they
share its 28-digit key and count up from `first_row` (`driftgate.core.ids`). Values that differ
per prediction are JSON lists; a big request's inputs are stored as columns, numeric ones packed
together (base64 of their bytes: no per-value number formatting); small requests' inputs as row objects,
encoded for a whole merged batch at once. `expand` turns a stored row back into one mapping per
prediction, as the store's readers return them.

A row is a plain tuple in `COLUMNS` order with its JSON documents already encoded, so the same
value goes to the spool file, to SQLite's `executemany` and to PostgreSQL's `COPY` unchanged.
Redaction happens here, on the frame, before anything is encoded: a redacted value never reaches
the spool, the store or a log line.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from driftgate.core.ids import ROWS_PER_KEY, WHOLE, batch_ids, split_id
from driftgate.core.redaction import redact_columns, scrub_text

if TYPE_CHECKING:  # pandas loads only where frames are made: the store and the CLI start without it
    import pandas as pd

# A stored row holds one request's predictions (see `driftgate.core.ids` for how ids name it).
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
    "inputs",  # JSON: a list of row objects, or an object of columns (name -> JSON list, or packed numbers,
    # numeric columns of one dtype in one block: `_input_encoders`)
    "outputs",  # JSON list, one per row, or NULL (no answer)
    "probabilities",  # JSON list of lists, or the matrix packed (`_packed`); NULL: none
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


@dataclass(slots=True)
class LogBatch:
    """What one request hands to the recorder: O(1) to build, encoded later off the request path."""

    endpoint: str
    model: str
    version: int
    role: str
    ts: float | list[float]  # one time for the request, or one per row (batches merged by `merge`)
    ids: list[str]
    # The inputs: a DataFrame, or columns (name -> values) as the data plane hands them over.
    frame: pd.DataFrame | Mapping[str, Any] | None
    predictions: list[Any] | None
    probabilities: np.ndarray | None
    latency_ms: float | list[float]
    status: list[str] | str
    error: str | None = None
    redact: Mapping[str, str] | None = None
    # Shadow rows: the id of the row that answered the same input, one per row.
    parent_ids: list[str] | None = None
    # Rows per request when `merge` joined several (each is stored as its own row); None: one request.
    sizes: list[int] | None = None

    def __len__(self) -> int:
        return len(self.ids)


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


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# Below this many rows, per-column work (a Series access, one orjson call per column) costs more than
# it saves: a 1-row request's batch is encoded value by value.
_SMALL = 8


def _columns(frame: pd.DataFrame | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):
        if len(frame) < _SMALL:  # one conversion: a Series access per column costs ~20 us
            values = frame.to_numpy(dtype=object)
            return {str(name): values[:, i] for i, name in enumerate(frame.columns)}
        return {str(name): frame[name].to_numpy() for name in frame.columns}
    return frame


# Numbers that orjson writes as plain JSON numbers (or null): a list of them can be written in one
# call and split at commas, which no number contains.
_PLAIN = frozenset({int, float, bool})
_NUMPY_KINDS = frozenset("biuf")
# What JSON escapes in a string: quote, backslash, control characters (and orjson: nothing else).
_ESCAPED = re.compile(r'["\\\x00-\x1f]')
# Ends a row in `_json_objects`' joined text: a control character, which JSON text never holds raw.
_ROW_SEPARATOR = "\x1e"
_ROW_END = "}" + _ROW_SEPARATOR


def _json_array(values: Any) -> list[str]:
    """Each value's JSON text, the whole column at once where it is numeric (~20x faster than one
    `dumps` per value; the log's encoding runs for every row served)."""
    if len(values) < _SMALL:
        return [dumps(_scalar(v)) for v in values]
    if isinstance(values, np.ndarray) and values.dtype.kind in _NUMPY_KINDS and values.ndim == 1:
        text = orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY).decode()
        return text[1:-1].split(",")
    if isinstance(values, list) and all(type(v) in _PLAIN for v in values):
        return orjson.dumps(values).decode()[1:-1].split(",")
    if all(type(v) is str for v in values) and not _ESCAPED.search("".join(values)):
        # Category names: plain text needs only its quotes (orjson writes non-ASCII as it is).
        return ['"' + v + '"' for v in values]
    return [dumps(_scalar(v)) for v in values]


def _json_objects(columns: Mapping[str, Any], n: int) -> list[str]:
    """One JSON object per row from columns (name -> values), keys in column order."""
    if not columns:
        return ["{}"] * n
    if n < _SMALL:  # a dict per row and one call each: no template to build
        names = list(columns)
        values = [v.tolist() if isinstance(v, np.ndarray) else list(v) for v in columns.values()]
        return [dumps(dict(zip(names, row, strict=True))) for row in zip(*values, strict=True)]
    # The keys are encoded once, the values column by column; then every row's pieces are laid out in
    # one list by slice assignment and joined in one call (8-20 % less than a `%` template per row).
    # The separator cannot occur inside the JSON: control characters are always escaped there.
    keys = [("{" if i == 0 else ",") + dumps(str(name)) + ":" for i, name in enumerate(columns)]
    stride = 2 * len(keys) + 1
    pieces: list[str] = [_ROW_END] * (n * stride)
    for i, (key, values) in enumerate(zip(keys, columns.values(), strict=True)):
        encoded = _json_array(values)
        if len(encoded) != n:
            raise ValueError(f"column {key[1:-1]} has {len(encoded)} values for {n} rows")
        pieces[2 * i :: stride] = [key] * n
        pieces[2 * i + 1 :: stride] = encoded
    return "".join(pieces).split(_ROW_SEPARATOR)[:-1]


def _json_list(values: Any) -> str:
    """A column's values as a JSON array, in one `orjson` call (numbers, category names, labels)."""
    if _is_numeric(values):
        return orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    if isinstance(values, np.ndarray):
        values = values.tolist()
    return dumps(values if isinstance(values, list) else list(values))


def _packed(values: np.ndarray) -> str:
    """A numeric array as JSON `{"dtype", "shape", "b64"}`: its bytes in base64, ~11 characters a
    value where the shortest decimal text of a float64 takes ~19, and no per-value formatting."""
    data = binascii.b2a_base64(np.ascontiguousarray(values).data, newline=False).decode("ascii")
    shape = ",".join(map(str, values.shape))
    return f'{{"dtype":"{values.dtype.str}","shape":[{shape}],"b64":"{data}"}}'


def _unpacked(column: Any) -> Any:
    """Stored values: a JSON list as it is, a packed array decoded to lists (NaN as None, like JSON)."""
    if not isinstance(column, dict):
        return column
    values = np.frombuffer(base64.b64decode(column["b64"]), dtype=np.dtype(column["dtype"]))
    values = values.reshape(column["shape"])
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return orjson.loads(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY))  # orjson: NaN -> null
    return values.tolist()


def _input_column(values: Any) -> str:
    if _is_numeric(values):
        return _packed(values)
    return _json_list(values)


def _is_numeric(values: Any) -> bool:
    return isinstance(values, np.ndarray) and values.dtype.kind in _NUMPY_KINDS and values.ndim == 1


def _input_encoders(columns: Mapping[str, Any]) -> list[Callable[[int, int], str]]:
    """Per column, what writes rows [a, b) of it. Numeric columns of one dtype are packed together:
    the first holds the block (`{"dtype", "shape": [k, n], "b64", "columns"}`), the others name it
    (`{"in": first}`): one base64 call per request instead of one per column; `_input_values` reads
    both forms."""
    by_dtype: dict[str, list[str]] = {}
    for name, values in columns.items():
        if _is_numeric(values):
            by_dtype.setdefault(values.dtype.str, []).append(name)
    heads: dict[str, tuple[np.ndarray, str]] = {}
    member_of: dict[str, str] = {}
    for names in by_dtype.values():
        if len(names) > 1:
            stacked = np.stack([columns[name] for name in names])  # one copy per merged batch
            heads[names[0]] = (stacked, dumps([str(name) for name in names]))
            member_of.update(dict.fromkeys(names[1:], '{"in":' + dumps(str(names[0])) + "}"))

    def column(values: Any) -> Callable[[int, int], str]:
        return lambda a, b: _input_column(values[a:b])

    def block(matrix: np.ndarray, names: str) -> Callable[[int, int], str]:
        return lambda a, b: _packed(matrix[:, a:b])[:-1] + ',"columns":' + names + "}"

    def member(text: str) -> Callable[[int, int], str]:
        return lambda a, b: text

    return [
        block(*heads[name]) if name in heads else member(member_of[name]) if name in member_of else column(values)
        for name, values in columns.items()
    ]


def _input_values(inputs: Mapping[str, Any]) -> list[Any]:
    """A stored object of columns as one list of values per column, packed blocks unpacked."""
    blocks: dict[str, Any] = {}
    for column in inputs.values():
        if isinstance(column, dict) and "columns" in column:
            blocks.update(zip(column["columns"], _unpacked(column), strict=True))
    return [blocks[name] if name in blocks else _unpacked(column) for name, column in inputs.items()]


def _groups(batch: LogBatch) -> list[tuple[int, int, str, int]]:
    """(start, end, batch key, first row number) of each stored row: one per request and key, whose
    ids count up from the key (`ids.new_ids`); ids that do not are stored one by one."""
    ids = batch.ids
    out: list[tuple[int, int, str, int]] = []
    start = 0
    for size in batch.sizes or [len(ids)]:
        end = start + size
        i = start
        while i < end:
            key, first = split_id(ids[i])
            j = i + 1 if first == WHOLE else max(i + 1, min(end, i + ROWS_PER_KEY - first))
            if j - i > 1 and split_id(ids[j - 1]) != (key, first + j - i - 1):
                j = i + 1  # not a run of `new_ids`: this row alone
            out.append((i, j, key, first))
            i = j
        start = end
    return out


def _statuses(status: list[str] | str, a: int, b: int) -> tuple[str, int]:
    """A group's status column (one status, or a JSON array when they differ) and its review count."""
    if isinstance(status, str):
        return status, (b - a) * (status in REVIEW_STATUSES)
    part = status[a:b]
    if part.count(part[0]) == len(part):
        return part[0], (b - a) * (part[0] in REVIEW_STATUSES)
    return dumps(part), sum(part.count(s) for s in REVIEW_STATUSES)


def encode(batch: LogBatch) -> list[Row]:
    """The batch's stored rows in `COLUMNS` order, one per request: redacted and JSON-encoded."""
    n = len(batch.ids)
    if not n:
        return []
    error = batch.error
    # One representation from here on: columns (name -> values), as the data plane hands them over.
    columns = _columns(batch.frame) or {}
    if columns and batch.redact:
        if error:
            error = scrub_text(error, columns, batch.redact)
        columns = redact_columns(columns, batch.redact)
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"column {name} has {len(values)} values for {n} prediction ids")
    groups = _groups(batch)
    small = any(b - a < _SMALL for a, b, _, _ in groups)
    # Small groups (a merge of 1-row requests) take slices of JSON texts encoded for the whole batch
    # at once, their inputs as row objects; big groups encode their own columns, numbers packed.
    rows = _PerRow(batch, columns, n) if small else None
    keys = [dumps(str(name)) + ":" for name in columns]
    encoders = _input_encoders(columns) if any(b - a >= _SMALL for a, b, _, _ in groups) else []
    head = (batch.endpoint, batch.model, int(batch.version), batch.role)
    ts, latency = batch.ts, batch.latency_ms
    out: list[Row] = []
    for a, b, key, first in groups:
        if rows is not None and b - a < _SMALL:
            inputs, outputs, probabilities = rows.slice(a, b)
        else:
            inputs = "{" + ",".join(k + write(a, b) for k, write in zip(keys, encoders, strict=True)) + "}"
            outputs = None if batch.predictions is None else _json_list(batch.predictions[a:b])
            probabilities = None if batch.probabilities is None else _packed(batch.probabilities[a:b])
        status, review = _statuses(batch.status, a, b)
        out.append(
            (
                key,
                first,
                b - a,
                *head,
                ts[a] if isinstance(ts, list) else float(ts),
                latency[a] if isinstance(latency, list) else float(latency),
                status,
                review,
                error,
                inputs,
                outputs,
                probabilities,
                None if batch.parent_ids is None else dumps(batch.parent_ids[a:b]),
            )
        )
    return out


class _PerRow:
    """Each row's JSON texts, encoded for a whole batch at once, to be sliced into small groups."""

    def __init__(self, batch: LogBatch, columns: Mapping[str, Any], n: int) -> None:
        self.inputs = _json_objects(columns, n)
        self.outputs = None if batch.predictions is None else _json_array(batch.predictions)
        matrix = batch.probabilities
        self.probabilities: list[str] | None = None
        if matrix is not None and matrix.ndim == 2 and matrix.shape[1]:
            text = orjson.dumps(np.ascontiguousarray(matrix), option=orjson.OPT_SERIALIZE_NUMPY).decode()
            self.probabilities = ["[" + part + "]" for part in text[2:-2].split("],[")]
        elif matrix is not None:
            self.probabilities = [dumps(p) for p in matrix.tolist()]

    def slice(self, a: int, b: int) -> tuple[str, str | None, str | None]:
        def joined(texts: list[str] | None) -> str | None:
            return None if texts is None else "[" + ",".join(texts[a:b]) + "]"

        return joined(self.inputs), joined(self.outputs), joined(self.probabilities)  # type: ignore[return-value]


def count_rows(rows: Iterable[Row]) -> int:
    """Predictions held by stored rows (each holds a request's worth)."""
    return sum(row[2] for row in rows)


def _merge_key(batch: LogBatch) -> tuple[Any, ...] | None:
    """Batches with equal keys can become one; None: keep this one as it is."""
    columns = batch.frame
    if columns is not None and not isinstance(columns, dict):
        return None
    if batch.probabilities is not None and batch.probabilities.ndim != 2:
        return None
    return (
        batch.endpoint,
        batch.model,
        batch.version,
        batch.role,
        batch.error,
        id(batch.redact),  # the endpoint config's own mapping: the same object for every request
        None if columns is None else tuple((k, getattr(v, "dtype", None)) for k, v in columns.items()),
        batch.predictions is None,
        None if batch.probabilities is None else batch.probabilities.shape[1],
        batch.parent_ids is None,
    )


def merge(batches: list[LogBatch]) -> list[LogBatch]:
    """Runs of batches from the same endpoint, version and config as one batch each, with per-row
    times and latencies: a thousand 1-row requests cross to the log writer process as one batch of
    arrays (one pickle of a few arrays, not a thousand small dicts of arrays)."""
    out: list[LogBatch] = []
    run: list[LogBatch] = []
    run_key: tuple[Any, ...] | None = None
    for batch in batches:
        key = _merge_key(batch)
        if key is None or key != run_key:
            if run:
                out.append(_merged(run))
            run, run_key = [], key
            if key is None:
                out.append(batch)
                continue
        run.append(batch)
    if run:
        out.append(_merged(run))
    return out


def _merged(run: list[LogBatch]) -> LogBatch:
    if len(run) == 1:
        return run[0]
    first = run[0]

    def per_row(values: list[Any]) -> list[Any]:
        return [
            v
            for b, value in zip(run, values, strict=True)
            for v in (value if isinstance(value, list) else [value] * len(b))
        ]

    # _merge_key gave every batch of the run the same shape: all or none of them hold each part, so the
    # `is not None` filters below drop nothing; they only tell the type checker.
    columns = None
    if first.frame is not None:
        assert isinstance(first.frame, dict)
        frames = [b.frame for b in run if b.frame is not None]
        columns = {name: np.concatenate([frame[name] for frame in frames]) for name in first.frame}
    return LogBatch(
        first.endpoint,
        first.model,
        first.version,
        first.role,
        per_row([b.ts for b in run]),
        [i for b in run for i in b.ids],
        columns,
        None if first.predictions is None else [p for b in run if b.predictions is not None for p in b.predictions],
        None
        if first.probabilities is None
        else np.concatenate([b.probabilities for b in run if b.probabilities is not None]),
        per_row([b.latency_ms for b in run]),
        per_row([b.status for b in run]),
        error=first.error,
        redact=first.redact,
        parent_ids=None
        if first.parent_ids is None
        else [p for b in run if b.parent_ids is not None for p in b.parent_ids],
        sizes=[size for b in run for size in (b.sizes or [len(b)])],
    )


def decode_list(text: str | None) -> Any:
    """A stored JSON column (outputs, probabilities, parents) as lists; None stays None."""
    return None if text is None else _unpacked(orjson.loads(text))


def decode_statuses(status: str, n: int) -> list[str]:
    """A stored row's status column as one status per row."""
    return orjson.loads(status) if status.startswith("[") else [status] * n


def expand(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A stored row's predictions as mappings of `PREDICTION_COLUMNS`, JSON decoded; the columns the
    row mapping lacks (a reader that did not select `inputs`, say) are None."""
    n, key, first = row["n_rows"], row["batch_key"], row["first_row"]
    ids = batch_ids(key, first, n)
    text = row.get("inputs")
    inputs = None if text is None else orjson.loads(text)
    if isinstance(inputs, dict):  # columns -> one object per row
        names = list(inputs)
        columns = _input_values(inputs)
        inputs = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)] or [
            {} for _ in range(n)
        ]
    outputs = decode_list(row.get("outputs"))
    probabilities = decode_list(row.get("probabilities"))
    parents = decode_list(row.get("parents"))
    statuses = decode_statuses(row["status"], n)
    out = []
    for i in range(n):
        out.append(
            {
                "id": ids[i],
                "endpoint": row.get("endpoint"),
                "model": row.get("model"),
                "version": row.get("version"),
                "role": row.get("role"),
                "ts": row.get("ts"),
                "inputs": None if inputs is None else inputs[i],
                "output": None if outputs is None else outputs[i],
                "probabilities": None if probabilities is None else probabilities[i],
                "latency_ms": row.get("latency_ms"),
                "status": statuses[i],
                "error": row.get("error"),
                "parent_id": None if parents is None else parents[i],
            }
        )
    return out


def as_dicts(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Stored rows' predictions, decoded (for tests and tools)."""
    return [p for row in rows for p in expand(dict(zip(COLUMNS, row, strict=True)))]


def from_prediction(pred: Mapping[str, Any]) -> Row:
    """The stored row of one prediction given as a mapping of `PREDICTION_COLUMNS` with decoded JSON
    (the older `write(rows)` form)."""
    return from_legacy(
        tuple(
            (dumps(pred.get(c)) if pred.get(c) is not None else ("{}" if c == "inputs" else None))
            if c in ("inputs", "output", "probabilities")
            else pred.get(c)
            for c in PREDICTION_COLUMNS
        )
    )


def from_legacy(row: Row) -> Row:
    """The stored row of one prediction stored the old way: a tuple in `PREDICTION_COLUMNS` order
    with its JSON encoded (spool files and logs from before batches)."""
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
