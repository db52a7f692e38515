"""Open Inference Protocol (KServe V2 / Triton) over REST, with Triton's binary tensor extension.

Request (`POST /v2/models/{endpoint}/infer`)::

    {"id"?: str, "parameters"?: {"binary_data_output"?: bool, ...},
     "inputs": [{"name", "shape", "datatype", "data"? , "parameters"?: {"binary_data_size"?: int}}],
     "outputs"?: [{"name", "parameters"?: {"binary_data"?: bool}}]}

With the binary extension the HTTP body is that JSON header (its length in the
`Inference-Header-Content-Length` header) followed by the raw bytes of every input that has
`parameters.binary_data_size`, in input order. Numeric tensors are little-endian, row-major;
BYTES tensors are elements each prefixed by a 4-byte little-endian length.

Inputs map to features in one of two ways: one tensor per feature, named by the feature, shape
`[n]` or `[n, 1]`; or a single numeric tensor `[n, d]` whose columns are the features in order.

Responses carry `predict` (shape `[n]`) and, for classifiers, `predict_proba` (`[n, k]`); when
rows were deferred to human review, also `status` (BYTES `[n]`, "ok" or "review").
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from driftgate.errors import BadRequest, InvalidInput, short_repr
from driftgate.serving.result import DecodedRequest, PredictionResult

HEADER_LENGTH = "Inference-Header-Content-Length"
CONTENT_TYPE_JSON = "application/json"
# Triton answers binary responses with this type; tritonclient does not look at it.
CONTENT_TYPE_BINARY = "application/octet-stream"

# Explicit little-endian dtypes: the wire format is little-endian whatever the host is.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMPY_DTYPES, "BYTES")
_INT_TYPES = frozenset(k for k, v in NUMPY_DTYPES.items() if v.kind in "iu")
_LENGTH_PREFIX = struct.Struct("<I")
# The most dimensions a tensor may have (numpy's limit), so the deepest `data` nesting accepted.
MAX_DIMS = 64

OUTPUT_PREDICT = "predict"
OUTPUT_PROBA = "predict_proba"
OUTPUT_STATUS = "status"


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    # None: not said by the client, so the request-wide `binary_data_output` applies.
    binary_data: bool | None = None


@dataclass(frozen=True, slots=True)
class V2Options:
    """What a V2 request asks of the response (everything but the inputs)."""

    id: str | None = None
    # Empty: the client named no outputs, so every output is returned.
    outputs: tuple[RequestedOutput, ...] = ()
    binary_data_output: bool = False

    def is_binary(self, output: RequestedOutput) -> bool:
        return self.binary_data_output if output.binary_data is None else output.binary_data


@dataclass(slots=True)
class _Tensor:
    name: str
    shape: list[int]
    datatype: str
    data: Any  # np.ndarray of NUMPY_DTYPES[datatype], or list[str] for BYTES


# Public names for the other transport of this protocol (serving/protocols/grpc).
Tensor = _Tensor


@dataclass(slots=True)
class _Tail:
    """The binary section after the JSON header, consumed input by input."""

    view: memoryview
    offset: int = 0
    present: bool = False

    def take(self, size: int, name: str) -> memoryview:
        if not self.present:
            raise BadRequest(
                f"input '{name}': has parameters.binary_data_size but the request has no {HEADER_LENGTH} header",
                field=name,
            )
        end = self.offset + size
        if end > len(self.view):
            raise InvalidInput(
                f"input '{name}': expected {size} bytes of binary data, got {len(self.view) - self.offset}",
                field=name,
            )
        chunk, self.offset = self.view[self.offset : end], end
        return chunk


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def _split_body(body: bytes, header_length: int | None) -> tuple[memoryview, _Tail]:
    view = memoryview(body)  # slicing a memoryview never copies the (possibly large) tail
    if header_length is None:
        return view, _Tail(view[len(view) :])
    if not 0 < header_length <= len(body):
        raise BadRequest(
            f"{HEADER_LENGTH}: expected a length between 1 and {len(body)} (the body size), got {header_length}"
        )
    return view[:header_length], _Tail(view[header_length:], present=True)


def _load_header(header: memoryview, has_length: bool) -> dict[str, Any]:
    try:
        obj = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        # The usual cause: binary tensors sent without the header that says where the JSON ends.
        hint = "" if has_length else f" (binary tensor data needs the {HEADER_LENGTH} header)"
        raise BadRequest(f"inference request: expected a JSON object, got a parse error: {exc}{hint}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"inference request: expected a JSON object, got {type(obj).__name__}")
    return obj


def _check_shape(name: str, shape: Any) -> list[int]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(
            f"input '{name}': expected 'shape' as an array of non-negative integers, got {short_repr(shape)}",
            field=name,
        )
    return shape


check_shape = _check_shape


def _bytes_from_binary(chunk: memoryview, name: str) -> list[str]:
    """Triton BYTES wire format -> str elements (a Python loop: elements are variable-length)."""
    out: list[str] = []
    raw, offset, end = chunk.tobytes(), 0, len(chunk)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInput(
                f"input '{name}': expected a 4-byte length prefix at byte {offset}, got the end", field=name
            )
        (size,) = _LENGTH_PREFIX.unpack_from(raw, offset)
        offset += 4
        if offset + size > end:
            raise InvalidInput(
                f"input '{name}': expected {size} bytes for element {len(out)}, got {end - offset}", field=name
            )
        try:
            out.append(raw[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(
                f"input '{name}': expected UTF-8 text in element {len(out)}, got undecodable bytes", field=name
            ) from None
        offset += size
    return out


def _numeric_from_binary(chunk: memoryview, name: str, datatype: str, count: int) -> np.ndarray:
    dtype = NUMPY_DTYPES[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': expected {count * dtype.itemsize} bytes of binary data ({count} x {datatype}), "
            f"got {len(chunk)}",
            field=name,
        )
    if datatype == "BOOL":
        # Any non-zero byte is true; viewing arbitrary bytes as np.bool_ would be undefined.
        return np.frombuffer(chunk, dtype=np.uint8) != 0
    # Copy: frombuffer gives a read-only (maybe unaligned) view of the request body, and
    # downstream code may fill NaNs in place.
    return np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)


def _flatten(values: list[Any], name: str) -> list[Any]:
    """V2 allows `data` nested like the shape; BYTES data are flattened here (numeric by numpy).
    Iterative, and no deeper than a tensor can be (numpy's `MAX_DIMS`): a depth-1000 array is a 422
    naming the input, not a RecursionError."""
    if not any(isinstance(v, list) for v in values):
        return values
    flat: list[Any] = []
    stack = [iter(values)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                if len(stack) >= MAX_DIMS:
                    raise InvalidInput(
                        f"input '{name}': expected 'data' nested at most {MAX_DIMS} levels deep (like its shape), "
                        "got deeper arrays",
                        field=name,
                    )
                stack.append(iter(v))
                break
            flat.append(v)
        else:
            stack.pop()
    return flat


def _bytes_from_json(data: list[Any], name: str) -> list[str]:
    flat = _flatten(data, name)
    if not all(type(v) is str for v in flat):
        bad = next(v for v in flat if type(v) is not str)
        raise InvalidInput(f"input '{name}': expected BYTES data as strings, got {short_repr(bad)}", field=name)
    return flat


_JSON_KINDS = {"BOOL": "b", "FP": "iuf", "INT": "iu"}


def _first_not_of(values: list[Any], family: str) -> Any:
    """The first JSON value that does not belong in a `family` tensor (for the error message)."""
    for v in values:
        if family == "BOOL":
            if not isinstance(v, bool):
                return v
        elif isinstance(v, bool) or not isinstance(v, int if family == "INT" else int | float):
            return v
    return values[0] if values else None


def _numeric_from_json(data: list[Any], name: str, datatype: str) -> np.ndarray:
    """np.asarray parses the whole list in C; then we check that it holds what `datatype` says.

    Inferring first (rather than `np.asarray(data, dtype=...)`) stops numpy from silently turning
    1.5 into 1 for INT64, "3" into 3.0 for FP64, or 7 into True for BOOL.
    """
    try:
        arr = np.asarray(data)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"input '{name}': expected {datatype} data as a flat or rectangular array of numbers, "
            f"got ragged or out-of-range values",
            field=name,
        ) from None
    family = "BOOL" if datatype == "BOOL" else ("INT" if datatype in _INT_TYPES else "FP")
    target = NUMPY_DTYPES[datatype].newbyteorder("=")
    if family == "INT" and arr.size and arr.dtype.kind not in "iu":
        # Integers beyond int64 (large UINT64) make numpy infer float64 or object: build exactly.
        flat = _flatten(data, name)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
            _check_int_range(min(flat), max(flat), name, datatype)
            return np.array(flat, dtype=target)
    if arr.size and arr.dtype.kind not in _JSON_KINDS[family]:
        bad = _first_not_of(_flatten(data, name), family)
        raise InvalidInput(f"input '{name}': expected {datatype} data, got {short_repr(bad)}", field=name)
    if family == "INT" and arr.size:
        _check_int_range(arr.min(), arr.max(), name, datatype)
    return arr.astype(target, copy=False).reshape(-1)


def _check_int_range(low: Any, high: Any, name: str, datatype: str) -> None:
    info = np.iinfo(NUMPY_DTYPES[datatype])
    if low < info.min or high > info.max:
        raise InvalidInput(
            f"input '{name}': expected {datatype} values in [{info.min}, {info.max}], "
            f"got {low if low < info.min else high}",
            field=name,
        )


def binary_tensor_data(chunk: memoryview, name: str, datatype: str, count: int) -> Any:
    """One tensor's elements from its raw bytes (REST binary extension, gRPC raw contents)."""
    if datatype == "BYTES":
        return _bytes_from_binary(chunk, name)
    return _numeric_from_binary(chunk, name, datatype, count)


def json_tensor_data(data: list[Any], name: str, datatype: str) -> Any:
    """One tensor's elements from a list of values (REST JSON `data`, gRPC typed contents)."""
    if datatype == "BYTES":
        return _bytes_from_json(data, name)
    return _numeric_from_json(data, name, datatype)


def _parse_input(spec: Any, index: int, tail: _Tail) -> _Tensor:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidInput(
            f"inputs[{index}]: expected an object with a string 'name', got {short_repr(spec)}",
            field=f"inputs[{index}]",
        )
    name = spec["name"]
    datatype = spec.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"input '{name}': expected 'datatype' one of {list(DATATYPES)}, got {short_repr(datatype)}", field=name
        )
    shape = _check_shape(name, spec.get("shape"))
    count = math.prod(shape)
    params = spec.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput(f"input '{name}': expected 'parameters' as an object, got {short_repr(params)}", field=name)
    if "shared_memory_region" in params:
        raise InvalidInput(
            f"input '{name}': expected data in the request, got a shared memory region (not supported by driftgate)",
            field=name,
        )
    size = params.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise InvalidInput(
                f"input '{name}': expected parameters.binary_data_size as a non-negative integer, "
                f"got {short_repr(size)}",
                field=name,
            )
        data = binary_tensor_data(tail.take(size, name), name, datatype, count)
    elif isinstance(spec.get("data"), list):
        data = json_tensor_data(spec["data"], name, datatype)
    else:
        raise InvalidInput(
            f"input '{name}': expected 'data' as an array (or parameters.binary_data_size), "
            f"got {short_repr(spec.get('data'))}",
            field=name,
        )
    check_count(name, shape, len(data))
    return _Tensor(name, shape, datatype, data)


def check_count(name: str, shape: list[int], got: int) -> None:
    count = math.prod(shape)
    if got != count:
        raise InvalidInput(
            f"input '{name}': expected {count} values (the product of shape {shape}), got {got}", field=name
        )


def _is_matrix_input(tensors: list[_Tensor], features: frozenset[str]) -> bool:
    """A lone 2-D tensor is the [n, d] matrix form unless it is simply one feature's [n, 1] column."""
    if len(tensors) != 1 or len(tensors[0].shape) != 2:
        return False
    only = tensors[0]
    return not (only.name in features and only.shape[1] == 1)


def _matrix_columns(t: _Tensor, feature_names: Sequence[str], feature_is_numeric: Sequence[bool]) -> dict[str, Any]:
    n, d = t.shape
    if d != len(feature_names):
        raise InvalidInput(
            f"input '{t.name}': expected shape [{n}, {len(feature_names)}] (one column per feature: "
            f"{list(feature_names)}), got {t.shape}",
            field=t.name,
        )
    if t.datatype in ("BYTES", "BOOL"):
        raise InvalidInput(
            f"input '{t.name}': expected a numeric [n, d] tensor (FP32, FP64, INT*, UINT*), "
            f"got {t.datatype}; send one tensor per feature instead",
            field=t.name,
        )
    text = [f for f, numeric in zip(feature_names, feature_is_numeric, strict=True) if not numeric]
    if text:
        raise InvalidInput(
            f"input '{t.name}': a single [n, d] tensor needs every feature numeric, but {text} "
            "take strings; send one tensor per feature instead",
            field=t.name,
        )
    # One copy into column-major order makes every feature column contiguous.
    by_column = np.ascontiguousarray(np.asarray(t.data).reshape(n, d).T)
    return dict(zip(feature_names, by_column, strict=True))


def _per_feature_columns(tensors: list[_Tensor], numeric: dict[str, bool]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    first = tensors[0]
    for t in tensors:
        if not (len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1)):
            raise InvalidInput(
                f"input '{t.name}': expected shape [n] or [n, 1] (one tensor per feature), got {t.shape}", field=t.name
            )
        if t.shape[0] != first.shape[0]:
            raise InvalidInput(
                f"input '{t.name}': expected shape [{first.shape[0]}] to match the other inputs, got {t.shape}",
                field=t.name,
            )
        if t.name in columns:
            raise InvalidInput(f"input '{t.name}': expected each input name once, got it twice", field=t.name)
        if t.datatype == "BYTES" and numeric.get(t.name, False):
            raise InvalidInput(
                f"input '{t.name}': expected a numeric datatype for this numeric feature, got BYTES", field=t.name
            )
        # Unknown names are kept: schema validation decides about extra and missing features.
        columns[t.name] = t.data
    return columns


def _parse_outputs(req: dict[str, Any]) -> tuple[RequestedOutput, ...]:
    outputs = req.get("outputs")
    if outputs is None:
        return ()
    if not isinstance(outputs, list):
        raise InvalidInput(f"'outputs': expected an array, got {short_repr(outputs)}", field="outputs")
    parsed = []
    for i, out in enumerate(outputs):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise InvalidInput(
                f"outputs[{i}]: expected an object with a string 'name', got {short_repr(out)}", field=f"outputs[{i}]"
            )
        params = out.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInput(
                f"output '{out['name']}': expected 'parameters' as an object, got {short_repr(params)}",
                field=out["name"],
            )
        for unsupported in ("classification", "shared_memory_region"):
            if unsupported in params:
                raise InvalidInput(
                    f"output '{out['name']}': parameter '{unsupported}' is not supported; expected only 'binary_data'",
                    field=out["name"],
                )
        binary = params.get("binary_data")
        parsed.append(RequestedOutput(out["name"], None if binary is None else bool(binary)))
    return tuple(parsed)


def _parse_options(req: dict[str, Any], params: dict[str, Any]) -> V2Options:
    request_id = req.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"'id': expected a string, got {short_repr(request_id)}", field="id")
    return V2Options(
        id=request_id,
        outputs=_parse_outputs(req),
        binary_data_output=bool(params.get("binary_data_output", False)),
    )


def decode_infer(
    body: bytes,
    header_length: int | None,
    feature_names: Sequence[str],
    feature_is_numeric: Sequence[bool],
) -> tuple[DecodedRequest, V2Options]:
    """Decode a V2 infer request (JSON, or JSON header + binary tensors) into feature columns.

    `header_length` is the parsed `Inference-Header-Content-Length` HTTP header, or None.
    Numeric columns come back as numpy arrays, BYTES columns as lists of str.
    """
    if len(feature_names) != len(feature_is_numeric):
        raise ValueError("feature_names and feature_is_numeric must have the same length")
    header, tail = _split_body(body, header_length)
    req = _load_header(header, tail.present)
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput(f"'parameters': expected an object, got {short_repr(params)}", field="parameters")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(
            f"'inputs': expected a non-empty array of input tensors, got {short_repr(inputs)}", field="inputs"
        )
    tensors = [_parse_input(spec, i, tail) for i, spec in enumerate(inputs)]
    if tail.present and tail.offset != len(tail.view):
        raise InvalidInput(
            f"binary data: expected {tail.offset} bytes after the JSON header (the sum of "
            f"binary_data_size), got {len(tail.view)}",
            field="inputs",
        )
    request_params = {k: v for k, v in params.items() if k != "binary_data_output"}
    decoded = tensors_to_request(tensors, feature_names, feature_is_numeric, request_params)
    return decoded, _parse_options(req, params)


def tensors_to_request(
    tensors: list[_Tensor],
    feature_names: Sequence[str],
    feature_is_numeric: Sequence[bool],
    parameters: dict[str, Any],
) -> DecodedRequest:
    """Decoded input tensors -> feature columns (REST and gRPC share this): one tensor per feature,
    or a single numeric [n, d] matrix."""
    if _is_matrix_input(tensors, frozenset(feature_names)):
        columns = _matrix_columns(tensors[0], feature_names, feature_is_numeric)
    else:
        numeric = dict(zip(feature_names, feature_is_numeric, strict=True))
        columns = _per_feature_columns(tensors, numeric)
    n_rows = tensors[0].shape[0] if tensors[0].shape else 0
    if n_rows == 0:
        raise InvalidInput(
            f"input '{tensors[0].name}': expected at least one row, got shape {tensors[0].shape}", field=tensors[0].name
        )
    return DecodedRequest(columns=columns, n_rows=n_rows, parameters=parameters)


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _kind_datatype(kind: str) -> str | None:
    return {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64", "U": "BYTES", "S": "BYTES"}.get(kind)


def predict_tensor(predictions: Any) -> tuple[str, np.ndarray]:
    """(datatype, 1-D array) for the `predict` output.

    INT64 for integer labels, BYTES for strings, BOOL for booleans, FP64 for regression. Rows
    deferred to review have prediction None: FP64 holds them as NaN and BYTES as "", while INT64
    and BOOL cannot hold a gap, so such a response switches to FP64 (labels as floats, NaN gaps).
    """
    arr = np.asarray(predictions)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim > 1 else arr.reshape(1)
    datatype = _kind_datatype(arr.dtype.kind)
    if datatype is not None:
        return datatype, arr
    # Object array: mixed types and/or None (deferred rows).
    missing = np.fromiter((v is None for v in arr), dtype=bool, count=arr.size)
    present = np.asarray(arr[~missing].tolist())
    kind = present.dtype.kind if present.size else "f"
    if _kind_datatype(kind) in ("INT64", "BOOL", "FP64"):
        out = np.full(arr.size, np.nan)
        out[~missing] = present.astype(np.float64)
        return "FP64", out
    return "BYTES", np.array(["" if v is None else str(v) for v in arr], dtype=object)


def _bytes_to_binary(values: np.ndarray) -> bytes:
    encoded = [str(v).encode("utf-8") for v in values.tolist()]
    prefixes = np.array([len(e) for e in encoded], dtype="<u4").tobytes()
    # Interleave 4-byte length prefixes and element bytes: [len0, e0, len1, e1, ...].
    parts: list[bytes] = [b""] * (2 * len(encoded))
    parts[0::2] = [prefixes[i : i + 4] for i in range(0, len(prefixes), 4)]
    parts[1::2] = encoded
    return b"".join(parts)


def _output_tensors(result: PredictionResult) -> dict[str, tuple[str, np.ndarray, list[int]]]:
    """Every output this result can give: name -> (datatype, array, shape)."""
    datatype, predict = predict_tensor(result.predictions)
    outputs = {OUTPUT_PREDICT: (datatype, predict, [int(predict.size)])}
    if result.probabilities is not None:
        proba = np.asarray(result.probabilities, dtype=np.float64)
        if proba.ndim == 1:
            proba = proba.reshape(-1, 1)
        outputs[OUTPUT_PROBA] = ("FP64", proba, [int(proba.shape[0]), int(proba.shape[1])])
    if result.status is not None:
        outputs[OUTPUT_STATUS] = ("BYTES", np.asarray(result.status, dtype=object), [len(result.status)])
    return outputs


def available_outputs(has_probabilities: bool, has_status: bool = False) -> list[str]:
    names = [OUTPUT_PREDICT]
    if has_probabilities:
        names.append(OUTPUT_PROBA)
    if has_status:
        names.append(OUTPUT_STATUS)
    return names


def answerable_outputs(classifier: bool, automation: str, guard_reviews: bool) -> list[str]:
    """The outputs an endpoint can give, known before scoring: probabilities from a classifier unless
    every row goes to a person; `status` whenever rows may be deferred (automation below `full`, or an
    output guard whose action is `review`)."""
    probabilities = classifier and automation not in ("human_only", "assist")
    return available_outputs(probabilities, has_status=automation != "full" or guard_reviews)


def check_requested_outputs(options: V2Options, available: Sequence[str]) -> None:
    """Raise InvalidInput for a requested output the model cannot give (call before scoring to fail fast)."""
    for out in options.outputs:
        if out.name not in available:
            raise InvalidInput(
                f"requested output '{out.name}': expected one of {list(available)}, got '{out.name}'", field=out.name
            )


def _selected(options: V2Options, available: Sequence[str]) -> list[RequestedOutput]:
    if not options.outputs:
        return [RequestedOutput(name) for name in available]
    check_requested_outputs(options, available)
    return list(options.outputs)


def response_tensors(
    result: PredictionResult, options: V2Options
) -> list[tuple[RequestedOutput, str, np.ndarray, list[int]]]:
    """The outputs a response carries, in order (REST and gRPC share this): (requested, datatype,
    array, shape). Raises InvalidInput for a requested output the model cannot give."""
    tensors = _output_tensors(result)
    return [(requested, *tensors[requested.name]) for requested in _selected(options, list(tensors))]


def tensor_bytes(datatype: str, arr: np.ndarray) -> bytes:
    """A tensor's raw wire bytes: little-endian, row-major; BYTES elements length-prefixed."""
    if datatype == "BYTES":
        return _bytes_to_binary(arr.reshape(-1))
    return np.ascontiguousarray(arr, dtype=NUMPY_DTYPES[datatype]).tobytes()


def encode_infer(result: PredictionResult, model_name: str, options: V2Options) -> tuple[bytes, dict[str, str]]:
    """Encode a V2 infer response; returns (body, headers to add to the HTTP response).

    The headers always carry Content-Type, and `Inference-Header-Content-Length` when any
    output is sent as binary data after the JSON header.
    """
    outputs: list[dict[str, Any]] = []
    binary_parts: list[bytes] = []
    for requested, datatype, arr, shape in response_tensors(result, options):
        out: dict[str, Any] = {"name": requested.name, "datatype": datatype, "shape": shape}
        if options.is_binary(requested):
            raw = tensor_bytes(datatype, arr)
            out["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        elif datatype == "BYTES":
            out["data"] = [str(v) for v in arr.reshape(-1).tolist()]
        else:
            # A flat contiguous numpy array goes through orjson natively (no Python floats).
            out["data"] = np.ascontiguousarray(arr.reshape(-1), dtype=NUMPY_DTYPES[datatype].newbyteorder("="))
        outputs.append(out)
    response: dict[str, Any] = {"model_name": model_name, "model_version": str(result.version)}
    if options.id is not None:
        response["id"] = options.id
    response["outputs"] = outputs
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary_parts:
        return header, {"Content-Type": CONTENT_TYPE_JSON}
    headers = {"Content-Type": CONTENT_TYPE_BINARY, HEADER_LENGTH: str(len(header))}
    return b"".join([header, *binary_parts]), headers


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


def model_metadata(
    name: str,
    versions: list[str],
    inputs: list[tuple[str, str]],
    outputs: list[tuple[str, str, list[int]]],
    platform: str,
) -> dict[str, Any]:
    """`GET /v2/models/{name}` body. Inputs are (name, datatype), each of shape [-1] (any batch)."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": platform,
        "inputs": [{"name": n, "datatype": dt, "shape": [-1]} for n, dt in inputs],
        "outputs": [{"name": n, "datatype": dt, "shape": list(shape)} for n, dt, shape in outputs],
    }


def server_metadata(version: str) -> dict[str, Any]:
    """`GET /v2` body."""
    return {"name": "driftgate", "version": version, "extensions": ["binary_tensor_data"]}
