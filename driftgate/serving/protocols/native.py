"""driftgate's own JSON protocol: `POST /v1/endpoints/{endpoint}/predict` (SPEC section 3).

Request bodies::

    {"instances": [{"f": v, ...}, ...]}                 # records
    {"instances": [[v, ...], ...]}                      # rows, values in feature order
    {"dataframe_split": {"columns": [...], "data": [[...], ...], "index": [...]}}
    {"instances": [<tensor>, ...]}                      # a model with one tensor feature
    ... plus an optional "parameters": {...}

A text feature's value is a string; a tensor's is nested lists of its shape, a flat list, an object
{"b64": "<base64 of the raw C-order bytes>", "dtype": "uint8"}, or for an image {"image": "<base64
PNG or JPEG>"} (registry/schema_media.py converts and checks them).

The table helpers here (`load_json_object`, `records_to_columns`, `rows_to_columns`,
`split_to_columns`) are shared with the MLflow decoder, which accepts the same shapes under
other keys. Values are kept as they came (None for JSON null): schema validation converts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from driftgate.errors import BadRequest, InvalidInput, json_type, short_repr
from driftgate.serving.result import DecodedRequest, PredictionResult

# Numpy scalars and arrays come straight out of models; orjson serialises them natively
# (C speed, no `.tolist()` round trip).
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def load_json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    """Parse `body` as a JSON object, or raise BadRequest naming the problem."""
    if not body:
        raise BadRequest(f"{what}: expected a JSON object, got an empty body")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what}: expected valid JSON, got a parse error: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequest(f"{what}: expected a JSON object, got {json_type(parsed)}")
    return parsed


def require_rows(rows: Any, where: str) -> list[Any]:
    if not isinstance(rows, list):
        raise InvalidInput(f"'{where}': expected an array of rows, got {json_type(rows)}", field=where)
    if not rows:
        raise InvalidInput(f"'{where}': expected at least one row, got an empty array", field=where)
    return rows


def records_to_columns(rows: list[Any], where: str) -> dict[str, list[Any]]:
    """[{"a": 1, "b": 2}, ...] -> {"a": [1, ...], "b": [2, ...]}.

    A key missing from some rows becomes None there, so that validation reports it per feature.
    """
    if isinstance(rows[0], dict) and rows[0]:
        # Fast path (the usual case): every row is an object with the first row's keys. Rows of the
        # same size that each hold all of them have no others; itemgetter and zip transpose in C
        # (~2x faster than a dict lookup per value), and a missing key falls through to the slow path.
        keys = tuple(rows[0])
        width = len(keys)
        if all(type(r) is dict and len(r) == width for r in rows):
            try:
                if width == 1:  # itemgetter of one key returns the value, not a 1-tuple
                    return {keys[0]: [r[keys[0]] for r in rows]}
                return _transpose_records(rows, keys)
            except KeyError:
                pass
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(
                f"'{where}[{i}]': expected an object like the other rows, got {json_type(row)}", field=where
            )
    every_key = dict.fromkeys(key for row in rows for key in row)  # first-seen order
    return {key: [r.get(key) for r in rows] for key in every_key}


# Rows transposed per C call: one call holds the GIL throughout, and a big body is decoded in a worker
# thread while the event loop waits for the GIL (api/limits.py). 20,000 rows: a few ms per call.
TRANSPOSE_ROWS = 20_000


def _transpose_records(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list[Any]]:
    get = itemgetter(*keys)
    if len(rows) <= TRANSPOSE_ROWS:
        return dict(zip(keys, map(list, zip(*map(get, rows), strict=True)), strict=True))
    columns: list[list[Any]] = [[] for _ in keys]
    for start in range(0, len(rows), TRANSPOSE_ROWS):
        chunk = rows[start : start + TRANSPOSE_ROWS]
        for column, values in zip(columns, zip(*map(get, chunk), strict=True), strict=True):
            column.extend(values)
    return dict(zip(keys, columns, strict=True))


def _transpose_rows(rows: list[list[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    if len(rows) <= TRANSPOSE_ROWS:
        return {name: list(col) for name, col in zip(names, zip(*rows, strict=True), strict=True)}
    columns: list[list[Any]] = [[] for _ in names]
    for start in range(0, len(rows), TRANSPOSE_ROWS):
        for column, values in zip(columns, zip(*rows[start : start + TRANSPOSE_ROWS], strict=True), strict=True):
            column.extend(values)
    return dict(zip(names, columns, strict=True))


def release_rows(obj: dict[str, Any]) -> None:
    """Free a decoded body's row arrays a slice at a time: freeing a million row objects at once is one
    C call of ~0.1-0.5 s that holds the GIL (the event loop waits for it while a big body is decoded in
    a worker thread)."""
    for value in obj.values():
        rows = value.get("data") if isinstance(value, dict) else value
        if isinstance(rows, list) and len(rows) > TRANSPOSE_ROWS:
            while rows:
                del rows[-TRANSPOSE_ROWS:]


def rows_to_columns(rows: list[Any], names: Sequence[str], where: str, order: str) -> dict[str, list[Any]]:
    """[[1, 2], [3, 4]] with names [a, b] -> {"a": [1, 3], "b": [2, 4]}; `order` explains `names`."""
    width = len(names)
    # One pass that only looks (C-level `all`), a second that explains only on failure.
    if not all(type(r) is list and len(r) == width for r in rows):
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise InvalidInput(
                    f"'{where}[{i}]': expected an array of {width} values ({order}), got {json_type(row)}",
                    field=where,
                )
            if len(row) != width:
                raise InvalidInput(
                    f"'{where}[{i}]': expected {width} values ({order}: {list(names)}), got {len(row)}",
                    field=where,
                )
    # zip(*rows) transposes in C; far faster than indexing row by row.
    return _transpose_rows(rows, names)


# The objects a tensor row may be given as (registry/schema_media.py), not records of features.
_TENSOR_OBJECTS = (frozenset({"b64", "dtype"}), frozenset({"image"}))


def table_to_columns(
    rows: Any, feature_names: Sequence[str], where: str, tensors: frozenset[str] = frozenset()
) -> dict[str, list[Any]]:
    """Rows given as records (objects) or as arrays in `feature_names` order. `tensors`: the tensor
    features, whose values are arrays (or objects) themselves."""
    rows = require_rows(rows, where)
    lone_tensor = len(feature_names) == 1 and feature_names[0] in tensors
    # A row object naming the feature is a record, even for a feature called "image".
    first = rows[0]
    if isinstance(first, dict) and not (
        lone_tensor and feature_names[0] not in first and frozenset(first) in _TENSOR_OBJECTS
    ):
        return records_to_columns(rows, where)
    if lone_tensor or (len(feature_names) == 1 and not any(isinstance(r, list | dict) for r in rows)):
        # TF-serving style for a one-feature model: [v1, v2, ...] is that feature's column (for a
        # tensor feature, each row is the tensor: nested lists, or a {"b64"} / {"image"} object).
        return {feature_names[0]: rows}
    return rows_to_columns(rows, feature_names, where, "in feature order")


def split_to_columns(split: Any, feature_names: Sequence[str], where: str) -> dict[str, list[Any]]:
    """pandas `orient="split"`: {"columns": [...], "data": [[...]], "index": [...] (ignored)}."""
    if not isinstance(split, dict):
        raise InvalidInput(f"'{where}': expected an object with 'columns' and 'data', got {json_type(split)}")
    if "data" not in split:
        raise InvalidInput(f"'{where}.data': expected an array of rows, got nothing", field=f"{where}.data")
    columns = split.get("columns")
    if columns is None:
        # pandas allows a split frame without column names; they are then positional.
        names: Sequence[str] = feature_names
        order = "in feature order, as 'columns' is absent"
    else:
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidInput(
                f"'{where}.columns': expected an array of column names (strings), got {short_repr(columns)}",
                field=f"{where}.columns",
            )
        if len(set(columns)) != len(columns):
            dupes = sorted({c for c in columns if columns.count(c) > 1})
            raise InvalidInput(
                f"'{where}.columns': expected unique names, got duplicates {dupes}", field=f"{where}.columns"
            )
        names, order = columns, "one per column"
    rows = require_rows(split["data"], f"{where}.data")
    index = split.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(rows)):
        got = f"{len(index)} entries" if isinstance(index, list) else json_type(index)
        raise InvalidInput(f"'{where}.index': expected {len(rows)} entries (one per row), got {got}")
    return rows_to_columns(rows, names, f"{where}.data", order)


def parameters_of(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """The optional per-request parameters object under `key`."""
    params = obj.get(key)
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(f"'{key}': expected an object, got {json_type(params)}", field=key)
    return params


def to_request(columns: dict[str, list[Any]], parameters: dict[str, Any]) -> DecodedRequest:
    n_rows = len(next(iter(columns.values()))) if columns else 0
    return DecodedRequest(columns=columns, n_rows=n_rows, parameters=parameters)


def decode_native(body: bytes, feature_names: Sequence[str], tensors: frozenset[str] = frozenset()) -> DecodedRequest:
    """Decode a native predict request into columns; see the module docstring for the shapes. Text and
    tensor values pass through as they came: the schema converts them (`tensors` only tells the
    one-feature row form of a tensor model apart)."""
    obj = load_json_object(body)
    has_instances, has_split = "instances" in obj, "dataframe_split" in obj
    if has_instances == has_split:
        got = "both" if has_instances else f"keys {sorted(obj)}"
        raise BadRequest(f"request body: expected exactly one of 'instances' or 'dataframe_split', got {got}")
    if has_instances:
        columns = table_to_columns(obj["instances"], feature_names, "instances", tensors)
    else:
        columns = split_to_columns(obj["dataframe_split"], feature_names, "dataframe_split")
    if not columns:
        # Every record was {}: there is nothing to score, which the user should hear about here.
        raise InvalidInput("'instances': expected rows with feature values, got only empty objects", field="instances")
    request = to_request(columns, parameters_of(obj, "parameters"))
    release_rows(obj)
    return request


def jsonable_predictions(predictions: Any) -> Any:
    """Predictions as orjson can write them (numpy arrays pass through as arrays)."""
    if isinstance(predictions, np.ndarray):
        # Object arrays (e.g. mixed None and labels) are not natively serialisable.
        return predictions.tolist() if predictions.dtype == object else np.ascontiguousarray(predictions)
    return predictions


def encode_native(result: PredictionResult) -> bytes:
    """`{"predictions", "probabilities"?, "classes"?, "ids", "model", "version", "status"?}` as JSON."""
    out: dict[str, Any] = {"predictions": jsonable_predictions(result.predictions)}
    if result.probabilities is not None:
        # float64 so that values print as ordinary JSON numbers (float32 would keep float32 digits).
        out["probabilities"] = np.ascontiguousarray(result.probabilities, dtype=np.float64)
    if result.classes is not None:
        out["classes"] = jsonable_predictions(result.classes)
    out["ids"] = result.ids
    out["model"] = result.model
    out["version"] = int(result.version)
    if result.versions is not None:
        out["versions"] = result.versions
    if result.status is not None:
        out["status"] = result.status
    return orjson.dumps(out, option=_DUMPS_OPTIONS)
