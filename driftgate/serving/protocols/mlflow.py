"""MLflow scoring protocol: `POST /v1/endpoints/{endpoint}/invocations`.

Mirrors `mlflow.pyfunc.scoring_server` (MLflow >= 2.0) so that clients written for
`mlflow models serve` work unchanged:

- `Content-Type: application/json` with exactly one of `dataframe_split`, `dataframe_records`
  (pandas orients), `instances` or `inputs` (TF-serving style: records, rows, or a dict of
  column -> values), plus optional `params`;
- `Content-Type: text/csv` with a header row (what `DataFrame.to_csv()` writes);
- answer `{"predictions": [...]}`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from driftgate.errors import BadRequest, InvalidInput, UnsupportedFormat, short_repr
from driftgate.serving.protocols.native import (
    jsonable_predictions,
    load_json_object,
    parameters_of,
    records_to_columns,
    release_rows,
    require_rows,
    split_to_columns,
    table_to_columns,
    to_request,
)
from driftgate.serving.result import DecodedRequest, PredictionResult

ACCEPTED_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
_BOOL_STRINGS = {"True": True, "False": False, "true": True, "false": False, "TRUE": True, "FALSE": False}


def _media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`; other charsets are refused like MLflow does."""
    if not content_type:
        # curl and many scripts omit it; JSON is what nearly everyone sends.
        return CONTENT_TYPE_JSON
    media, *params = (part.strip() for part in content_type.split(";"))
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedFormat(f"Content-Type charset: expected utf-8, got '{value.strip()}'")
    return media.lower()


def _columnar_to_columns(columns: dict[str, Any], where: str) -> dict[str, list[Any]]:
    """TF-serving columnar format: {"a": [1, 2], "b": [3, 4]}; all columns the same length."""
    if not columns:
        raise InvalidInput(f"'{where}': expected at least one column, got an empty object", field=where)
    n_rows: int | None = None
    first = ""
    for name, values in columns.items():
        if not isinstance(values, list):
            raise InvalidInput(f"'{where}.{name}': expected an array of values, got {short_repr(values)}", field=name)
        if n_rows is None:
            n_rows, first = len(values), name
        elif len(values) != n_rows:
            raise InvalidInput(
                f"'{where}.{name}': expected {n_rows} values to match column '{first}', got {len(values)}",
                field=name,
            )
    if not n_rows:
        raise InvalidInput(f"'{where}': expected at least one row, got empty columns", field=where)
    return columns


def _decode_json(body: bytes, feature_names: Sequence[str]) -> DecodedRequest:
    obj = load_json_object(body)
    keys = [k for k in ACCEPTED_KEYS if k in obj]
    if len(keys) != 1:
        raise BadRequest(
            f"request body: expected exactly one of the keys {list(ACCEPTED_KEYS)}, got keys {sorted(obj)}",
            accepted=list(ACCEPTED_KEYS),
        )
    key = keys[0]
    value = obj[key]
    if key == "dataframe_split":
        columns = split_to_columns(value, feature_names, key)
    elif key == "dataframe_records":
        rows = require_rows(value, key)
        columns = records_to_columns(rows, key)
    elif isinstance(value, dict):
        columns = _columnar_to_columns(value, key)
    else:
        columns = table_to_columns(value, feature_names, key)
    if not columns:
        raise InvalidInput(f"'{key}': expected rows with feature values, got only empty objects", field=key)
    request = to_request(columns, parameters_of(obj, "params"))
    release_rows(obj)
    return request


def _csv_column(values: list[str]) -> Any:
    """Type one CSV column like `pandas.read_csv` would: int, float (empty -> NaN), bool, else str.

    Conversions run on a numpy string array (vectorised) rather than value by value.
    """
    strings = np.asarray(values)
    empty = strings == ""
    has_empty = bool(empty.any())
    if not has_empty:
        try:
            return strings.astype(np.int64)
        except (ValueError, OverflowError):
            pass
    try:
        filled = np.where(empty, "nan", strings) if has_empty else strings
        return filled.astype(np.float64)
    except ValueError:
        pass
    if not has_empty and all(v in _BOOL_STRINGS for v in values):
        return np.array([_BOOL_STRINGS[v] for v in values], dtype=bool)
    # Strings stay strings; an empty cell is a missing value, as in pandas.
    return [v if v != "" else None for v in values]


def _decode_csv(body: bytes) -> DecodedRequest:
    try:
        text = body.decode("utf-8-sig")  # tolerate a BOM, which Excel writes
    except UnicodeDecodeError as exc:
        raise BadRequest(f"CSV body: expected UTF-8 text, got undecodable bytes at offset {exc.start}") from None
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise BadRequest(f"CSV body: expected valid CSV, got a parse error: {exc}") from None
    table = [row for row in table if row]  # blank lines (e.g. a trailing newline) are not rows
    if not table:
        raise BadRequest("CSV body: expected a header row and data rows, got an empty body")
    header, rows = table[0], table[1:]
    if not rows:
        raise InvalidInput("CSV body: expected at least one data row after the header, got none")
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise InvalidInput(f"CSV row {i + 1}: expected {width} values (one per header column), got {len(row)}")
    transposed = list(zip(*rows, strict=True))
    # `DataFrame.to_csv()` writes the index as a first column with an empty name: not a feature.
    skip_first = header[0] == "" and width > 1
    columns = {
        name: _csv_column(list(values))
        for j, (name, values) in enumerate(zip(header, transposed, strict=True))
        if not (skip_first and j == 0)
    }
    return DecodedRequest(columns=columns, n_rows=len(rows))


def decode_mlflow(body: bytes, content_type: str | None, feature_names: Sequence[str]) -> DecodedRequest:
    """Decode an MLflow `/invocations` request (JSON or CSV, chosen by `content_type`)."""
    media = _media_type(content_type)
    if media == CONTENT_TYPE_CSV:
        return _decode_csv(body)
    if media == CONTENT_TYPE_JSON or media.endswith("+json"):
        return _decode_json(body, feature_names)
    raise UnsupportedFormat(
        f"Content-Type: expected '{CONTENT_TYPE_JSON}' or '{CONTENT_TYPE_CSV}', got '{content_type}'"
    )


def encode_mlflow(result: PredictionResult) -> bytes:
    """`{"predictions": [...]}`, what `mlflow models serve` answers for a pyfunc model."""
    return orjson.dumps({"predictions": jsonable_predictions(result.predictions)}, option=orjson.OPT_SERIALIZE_NUMPY)
