"""Turning a `LogBatch` into stored rows: redaction first, then encoding, column by column.

Every request's row has the one form `driftgate.core.row_format` describes, whether it holds one
prediction or thousands. Work that does not depend on the request is done once per batch: numeric
columns are stacked into one block per dtype, other columns and the outputs are turned into per-value
JSON texts; each request's row then takes its slice (a thousand merged 1-row requests are one batch).
Redaction happens here, on the columns, before anything is encoded: a redacted value never reaches
the spool, the store or a log line.
"""

from __future__ import annotations

import binascii
import functools
import re
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from driftgate.core.ids import ROWS_PER_KEY, WHOLE, split_id
from driftgate.core.log_batch import LogBatch
from driftgate.core.redaction import redact_columns, scrub_text
from driftgate.core.row_format import REVIEW_STATUSES, Row, dumps, pack

if TYPE_CHECKING:  # pandas loads only where frames are made: the store and the CLI start without it
    import pandas as pd


# Below this many rows a DataFrame is converted in one call: a Series access per column costs ~20 us.
_SMALL = 8
_NUMPY_KINDS = frozenset("biuf")
# Numbers that orjson writes as plain JSON numbers (or null): a list of them can be written in one
# call and split at commas, which no number contains.
_PLAIN = frozenset({int, float, bool})
# What JSON escapes in a string: quote, backslash, control characters (and orjson: nothing else).
_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def _is_numeric(values: Any) -> bool:
    return type(values) is np.ndarray and values.ndim == 1 and values.dtype.kind in _NUMPY_KINDS


def _columns(frame: pd.DataFrame | Mapping[str, Any] | None) -> Mapping[str, Any]:
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(frame, pd.DataFrame):
        return frame or {}
    if len(frame) >= _SMALL:
        return {str(name): frame[name].to_numpy() for name in frame.columns}
    # One conversion; asking the frame for its dtypes alone costs more than `_typed`.
    names = map(str, frame.columns.tolist())  # iterating the Index itself costs ~1.5 us a column
    return dict(zip(names, _typed(frame.to_numpy(dtype=object)), strict=True))


# Python types of an object column that have a dtype of their own: packed like any request's numbers.
_DTYPES = {float: np.float64, int: np.int64, bool: np.bool_}


def _typed(values: np.ndarray) -> list[np.ndarray]:
    """The columns of a small frame's object matrix; those whose values are all of one Python number
    type as that dtype (one conversion per dtype)."""
    types: list[type | None] = list(map(type, values[0])) if len(values) else []
    for row in values[1:]:
        types = [t if type(v) is t else None for t, v in zip(types, row, strict=True)]
    columns = list(values.T)
    for kind, dtype in _DTYPES.items():
        at = [i for i, t in enumerate(types) if t is kind]
        if not at:
            continue
        typed: np.ndarray = values[:, at].astype(dtype)  # ints beyond int64 raise here as orjson would have
        for j, i in enumerate(at):
            columns[i] = typed[:, j]
    return columns


def _scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray):  # a row of a 2-D column
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _json_texts(values: Any) -> list[str]:
    """Each value's JSON text, the whole column at once where it can be (~20x faster than one `dumps`
    per value; the log's encoding runs for every row served)."""
    if len(values) < _SMALL:  # no whole-column call pays for itself
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


Writer = Callable[[int, int], str]


def _list_writer(values: Any, small: bool) -> Writer:
    """Rows [a, b) of a column (or the outputs) as a JSON list. Runs of small requests slice per-value
    texts made once for the batch; a big request's slice is one `orjson` call."""
    if small:
        texts = _json_texts(values)
        return lambda a, b: "[" + ",".join(texts[a:b]) + "]"
    if isinstance(values, np.ndarray):
        if values.dtype.kind in _NUMPY_KINDS:
            values = np.ascontiguousarray(values)  # orjson writes C-contiguous arrays only
            return lambda a, b: orjson.dumps(values[a:b], option=orjson.OPT_SERIALIZE_NUMPY).decode()
        values = values.tolist()
    return lambda a, b: dumps(values[a:b])


def _packed_writer(matrix: np.ndarray, rows_first: bool, tail: str = "") -> Writer:
    """Rows [a, b) of a 2-D array packed as `row_format.pack` writes them, the text around the bytes
    made once. `rows_first`: stored as rows [b - a, k] (probabilities); otherwise as columns
    [k, b - a] (a block of inputs), `matrix` then holding the batch's rows as its rows all the same."""
    matrix = np.ascontiguousarray(matrix)
    dtype, k = matrix.dtype.str, str(matrix.shape[1])
    head = '{"dtype":"' + dtype + '","shape":[' + ("" if rows_first else k + ",")
    middle = ("," + k if rows_first else "") + '],"b64":"'
    end = '"' + tail + "}"

    def write(a: int, b: int) -> str:
        # One row's bytes are the same either way round; a slice of rows needs no copy.
        block = matrix[a:b] if rows_first or b - a == 1 else matrix[a:b].T.copy()
        return head + str(b - a) + middle + binascii.b2a_base64(block.data, newline=False).decode("ascii") + end

    return write


@functools.lru_cache(maxsize=1024)
def _layout(
    names: tuple[Any, ...], dtypes: tuple[np.dtype | None, ...]
) -> tuple[str, tuple[tuple[tuple[int, ...], str | None], ...]]:
    """For columns (their names, and the dtype of each numeric one or None): the stored object's
    constant text with a %s for each part that varies by row, and each part: (the column's index, None)
    for a JSON list, or (the indices of a dtype's columns, the block's closing text) at the first of
    them. Made once per layout: an endpoint's requests share theirs."""
    columns = [(str(name), None if dtype is None else dtype.str) for name, dtype in zip(names, dtypes, strict=True)]
    by_dtype: dict[str, list[int]] = {}
    for i, (_, dtype) in enumerate(columns):
        if dtype is not None:
            by_dtype.setdefault(dtype, []).append(i)
    template = ""
    parts: list[tuple[tuple[int, ...], str | None]] = []
    for i, (name, dtype) in enumerate(columns):
        template += ("{" if i == 0 else ",") + dumps(name).replace("%", "%%") + ":"
        block = by_dtype[dtype] if dtype is not None else None
        if block is None:
            template += "%s"
            parts.append(((i,), None))
        elif block[0] != i:
            template += '{"in":' + dumps(columns[block[0]][0]).replace("%", "%%") + "}"
        else:
            template += "%s"
            parts.append((tuple(block), ',"columns":' + dumps([columns[j][0] for j in block])))
    return template + "}", tuple(parts)


def _inputs_writer(columns: Mapping[str, Any], small: bool) -> Writer:
    """What writes rows [a, b) of the columns as the stored JSON object (`row_format`): numeric
    columns of one dtype stacked once per batch, the first holding the block, the others naming it."""
    if not columns:
        return lambda a, b: "{}"
    values = list(columns.values())
    template, parts = _layout(tuple(columns), tuple([v.dtype if _is_numeric(v) else None for v in values]))
    writers = [
        _list_writer(values[at[0]], small)
        if tail is None
        else _packed_writer(np.array([values[i] for i in at]).T.copy(), False, tail)  # 3x faster than np.stack
        for at, tail in parts
    ]
    return lambda a, b: template % tuple([w(a, b) for w in writers])


def _probabilities_writer(matrix: np.ndarray) -> Writer:
    if matrix.ndim == 2:
        return _packed_writer(matrix, True)
    return lambda a, b: pack(matrix[a:b])


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
    columns = _columns(batch.frame)
    if columns and batch.redact:
        if error:
            error = scrub_text(error, columns, batch.redact)
        columns = redact_columns(columns, batch.redact)
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"column {name} has {len(values)} values for {n} prediction ids")
    groups = _groups(batch)
    small = any(b - a < _SMALL for a, b, _, _ in groups)
    inputs = _inputs_writer(columns, small)
    outputs = None if batch.predictions is None else _list_writer(batch.predictions, small)
    probabilities = None if batch.probabilities is None else _probabilities_writer(batch.probabilities)
    parents = batch.parent_ids
    head = (batch.endpoint, batch.model, int(batch.version), batch.role)
    ts, latency = batch.ts, batch.latency_ms
    out: list[Row] = []
    for a, b, key, first in groups:
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
                inputs(a, b),
                None if outputs is None else outputs(a, b),
                None if probabilities is None else probabilities(a, b),
                None if parents is None else dumps(parents[a:b]),
            )
        )
    return out


def from_prediction(pred: Mapping[str, Any]) -> Row:
    """The stored row of one prediction given as a mapping of `PREDICTION_COLUMNS` with decoded JSON
    (`PredictionRepo.write`, for tests and tools): encoded like any served request's."""
    probabilities = pred.get("probabilities")
    batch = LogBatch(
        pred["endpoint"],
        pred["model"],
        pred["version"],
        pred.get("role") or "primary",
        pred["ts"],
        [pred["id"]],
        {name: [value] for name, value in (pred.get("inputs") or {}).items()},
        None if pred.get("output") is None else [pred["output"]],
        None if probabilities is None else np.asarray([probabilities], dtype=float),
        pred.get("latency_ms") or 0.0,
        pred.get("status") or "ok",
        error=pred.get("error"),
        parent_ids=None if pred.get("parent_id") is None else [pred["parent_id"]],
    )
    return encode(batch)[0]
