"""Parsing a gRPC ModelInferRequest, in the server or (a big one) in the body decoder process.

A 60 MB message took 0.26 s to parse in one protobuf call that holds the GIL, and the tensors' decode
as long again: both now run in the decoder process (`api/body_decoder.py`) from the raw bytes. The
server needs only the model's name and version first (to pick the endpoint's schema): `model_of` reads
them off the wire, stepping over the tensors without reading them. Light imports: the decoder process
imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from driftgate.errors import BadRequest
from driftgate.serving.protocols.grpc import codec
from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb
from driftgate.serving.protocols.v2.types import TensorInput

# ModelInferRequest's field numbers (grpc_predict_v2.proto).
MODEL_NAME, MODEL_VERSION = 1, 2
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def parse_infer(raw: bytes) -> pb.ModelInferRequest:
    try:
        return pb.ModelInferRequest.FromString(raw)
    except DecodeError as exc:
        raise BadRequest(f"ModelInferRequest: expected a valid protobuf message, got a parse error: {exc}") from None


def decode_infer_raw(
    raw: bytes,
    feature_names: Sequence[str],
    feature_is_numeric: Sequence[bool],
    tensor_inputs: Mapping[str, TensorInput] | None = None,
) -> Any:
    """`codec.decode_infer` of the message `raw` (for the decoder process, which gets bytes)."""
    return codec.decode_infer(parse_infer(raw), feature_names, feature_is_numeric, tensor_inputs)


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 64:
        byte = raw[pos]  # IndexError past the end: the caller's "not well formed"
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varint over 64 bits")


def model_of(raw: bytes) -> tuple[str, str] | None:
    """The message's `model_name` and `model_version` (the last of each, as a parser takes them), read
    field by field at the top level only: a few steps whatever the tensors' size. None when the top
    level is not well formed; the full parse then says how."""
    name = version = ""
    pos, end = 0, len(raw)
    try:
        while pos < end:
            key, pos = _varint(raw, pos)
            number, wire = key >> 3, key & 7
            if wire == VARINT:
                _, pos = _varint(raw, pos)
            elif wire == FIXED64:
                pos += 8
            elif wire == FIXED32:
                pos += 4
            elif wire == LENGTH_DELIMITED:
                size, pos = _varint(raw, pos)
                if number in (MODEL_NAME, MODEL_VERSION):
                    text = raw[pos : pos + size].decode()
                    name, version = (text, version) if number == MODEL_NAME else (name, text)
                pos += size
            else:
                return None  # groups: not in this message
            if number in (MODEL_NAME, MODEL_VERSION) and wire != LENGTH_DELIMITED:
                return None
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return (name, version) if pos == end else None
