"""Input tensors: the JSON header, the binary tail, shapes, and tensor data as JSON or raw bytes."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np
import orjson

from driftgate.errors import BadRequest, InvalidInput, short_repr
from driftgate.serving.protocols.v2.types import (
    _INT_TYPES,
    _LENGTH_PREFIX,
    DATATYPES,
    HEADER_LENGTH,
    MAX_DIMS,
    NUMPY_DTYPES,
    Tail,
    Tensor,
)


def split_body(body: bytes, header_length: int | None) -> tuple[memoryview, Tail]:
    view = memoryview(body)  # slicing a memoryview never copies the (possibly large) tail
    if header_length is None:
        return view, Tail(view[len(view) :])
    if not 0 < header_length <= len(body):
        raise BadRequest(
            f"{HEADER_LENGTH}: expected a length between 1 and {len(body)} (the body size), got {header_length}"
        )
    return view[:header_length], Tail(view[header_length:], present=True)


def load_header(header: memoryview, has_length: bool) -> dict[str, Any]:
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


def _bytes_from_binary(chunk: memoryview, name: str, raw_bytes: bool = False) -> list[Any]:
    """Triton BYTES wire format -> str elements (a Python loop: elements are variable-length); the
    bytes themselves for an image input (`raw_bytes`: encoded PNG/JPEG files)."""
    out: list[Any] = []
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
            element = raw[offset : offset + size]
            out.append(element if raw_bytes else element.decode("utf-8"))
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


def _bytes_from_json(data: list[Any], name: str, raw_bytes: bool = False) -> list[Any]:
    flat = _flatten(data, name)
    if not all(type(v) is str for v in flat):
        bad = next(v for v in flat if type(v) is not str)
        raise InvalidInput(f"input '{name}': expected BYTES data as strings, got {short_repr(bad)}", field=name)
    return [_base64(v, name, i) for i, v in enumerate(flat)] if raw_bytes else flat


def _base64(text: str, name: str, element: int) -> bytes:
    """An image in JSON `data`: base64 text (JSON strings cannot hold a PNG's bytes)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"input '{name}': expected element {element} as base64 of a PNG or JPEG file, got {short_repr(text[:40])}",
            field=name,
        ) from None


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


def binary_tensor_data(chunk: memoryview, name: str, datatype: str, count: int, raw_bytes: bool = False) -> Any:
    """One tensor's elements from its raw bytes (REST binary extension, gRPC raw contents); BYTES
    elements stay bytes where `raw_bytes` (an image input)."""
    if datatype == "BYTES":
        return _bytes_from_binary(chunk, name, raw_bytes)
    return _numeric_from_binary(chunk, name, datatype, count)


def json_tensor_data(data: list[Any], name: str, datatype: str, raw_bytes: bool = False) -> Any:
    """One tensor's elements from a list of values (REST JSON `data`, gRPC typed contents); BYTES
    strings are base64 of encoded images where `raw_bytes` (an image input)."""
    if datatype == "BYTES":
        return _bytes_from_json(data, name, raw_bytes)
    return _numeric_from_json(data, name, datatype)


def parse_input(spec: Any, index: int, tail: Tail, images: frozenset[str] = frozenset()) -> Tensor:
    """One input tensor of the JSON header; BYTES to an input in `images` (image features) are kept as
    the files' bytes."""
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
        data = binary_tensor_data(tail.take(size, name), name, datatype, count, name in images)
    elif isinstance(spec.get("data"), list):
        data = json_tensor_data(spec["data"], name, datatype, name in images)
    else:
        raise InvalidInput(
            f"input '{name}': expected 'data' as an array (or parameters.binary_data_size), "
            f"got {short_repr(spec.get('data'))}",
            field=name,
        )
    check_count(name, shape, len(data))
    return Tensor(name, shape, datatype, data)


def check_count(name: str, shape: list[int], got: int) -> None:
    count = math.prod(shape)
    if got != count:
        raise InvalidInput(
            f"input '{name}': expected {count} values (the product of shape {shape}), got {got}", field=name
        )
