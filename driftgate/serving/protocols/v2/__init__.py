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
A text feature takes BYTES `[n]` (or `[n, 1]`); a tensor feature of shape `s` a numeric tensor
`[n, *s]` or `[n, prod(s)]`, and an image feature also BYTES `[n]` of PNG or JPEG files (raw in
binary data, base64 in JSON `data`).

Responses carry `predict` (shape `[n]`) and, for classifiers, `predict_proba` (`[n, k]`); when
rows were deferred to human review, also `status` (BYTES `[n]`, "ok" or "review").

Parts: `types` (constants, options), `tensors` (input tensors), `decode`, `encode`, `metadata`;
their public names are this package's.
"""

from __future__ import annotations

from driftgate.serving.protocols.v2.decode import decode_infer, tensors_to_request
from driftgate.serving.protocols.v2.encode import (
    answerable_outputs,
    available_outputs,
    check_requested_outputs,
    encode_infer,
    predict_tensor,
    response_tensors,
    tensor_bytes,
)
from driftgate.serving.protocols.v2.metadata import model_metadata, server_metadata
from driftgate.serving.protocols.v2.tensors import binary_tensor_data, check_count, check_shape, json_tensor_data
from driftgate.serving.protocols.v2.types import (
    CONTENT_TYPE_BINARY,
    CONTENT_TYPE_JSON,
    DATATYPES,
    DTYPE_DATATYPES,
    HEADER_LENGTH,
    MAX_DIMS,
    NUMPY_DTYPES,
    OUTPUT_PREDICT,
    OUTPUT_PROBA,
    OUTPUT_STATUS,
    RequestedOutput,
    Tensor,
    TensorInput,
    V2Options,
)

__all__ = [
    "CONTENT_TYPE_BINARY",
    "CONTENT_TYPE_JSON",
    "DATATYPES",
    "DTYPE_DATATYPES",
    "HEADER_LENGTH",
    "MAX_DIMS",
    "NUMPY_DTYPES",
    "OUTPUT_PREDICT",
    "OUTPUT_PROBA",
    "OUTPUT_STATUS",
    "RequestedOutput",
    "Tensor",
    "TensorInput",
    "V2Options",
    "answerable_outputs",
    "available_outputs",
    "binary_tensor_data",
    "check_count",
    "check_requested_outputs",
    "check_shape",
    "decode_infer",
    "encode_infer",
    "json_tensor_data",
    "model_metadata",
    "predict_tensor",
    "response_tensors",
    "server_metadata",
    "tensor_bytes",
    "tensors_to_request",
]
