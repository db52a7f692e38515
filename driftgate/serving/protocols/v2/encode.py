"""Encoding an infer response: outputs as JSON data or Triton binary tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from driftgate.errors import InvalidInput
from driftgate.serving.protocols.v2.types import (
    CONTENT_TYPE_BINARY,
    CONTENT_TYPE_JSON,
    HEADER_LENGTH,
    NUMPY_DTYPES,
    OUTPUT_PREDICT,
    OUTPUT_PROBA,
    OUTPUT_STATUS,
    RequestedOutput,
    V2Options,
)
from driftgate.serving.result import PredictionResult


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
