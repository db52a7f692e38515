"""Constants of the protocol and what a request asks of its response."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftgate.errors import BadRequest, InvalidInput

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
# A tensor feature's dtype (a numpy name) -> its datatype on the wire.
DTYPE_DATATYPES = {dtype.name: datatype for datatype, dtype in NUMPY_DTYPES.items()}
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


@dataclass(frozen=True, slots=True)
class TensorInput:
    """A tensor feature as the protocol takes it: an input named after it of shape [n, *shape] or
    [n, prod(shape)]; for an image, also BYTES [n] (or [n, 1]) of encoded PNG/JPEG files, raw bytes in
    binary data, base64 text in JSON `data`. Built from the schema by the API (plain values: a decode
    in the body decoder process gets it pickled)."""

    shape: tuple[int, ...]
    image: bool = False


@dataclass(slots=True)
class Tensor:
    name: str
    shape: list[int]
    datatype: str
    data: Any  # np.ndarray of NUMPY_DTYPES[datatype], or list[str] for BYTES (list[bytes] for an image)


@dataclass(slots=True)
class Tail:
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
