"""gRPC Open Inference Protocol messages <-> the data plane's requests and results.

Everything about tensors (datatypes, shapes, the [n, d] matrix form, raw byte layouts, output
selection) is the REST V2 codec's (`driftgate.serving.protocols.v2`): this module only moves values
between protobuf fields and those functions, so both transports accept, refuse and answer alike,
with the same error messages.

Inputs come either as typed contents (`contents.fp64_contents`, ...) or, for every input at once,
as `raw_input_contents`. The response mirrors the request: raw outputs (`raw_output_contents`,
what tritonclient reads) when the request was raw, typed contents otherwise; a request parameter
`binary_data_output` (bool) chooses explicitly. The response's `prediction_ids` parameter holds
the rows' prediction ids, comma-separated, for feedback (`POST /v1/endpoints/{e}/feedback`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from driftgate.errors import InvalidInput, short_repr
from driftgate.serving.protocols import v2
from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb
from driftgate.serving.result import DecodedRequest, PredictionResult

# Where each datatype's typed contents live (FP16 has none: it travels only as raw bytes).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
PREDICTION_IDS = "prediction_ids"
BINARY_DATA_OUTPUT = "binary_data_output"


def parameter_value(param: pb.InferParameter) -> Any:
    """The Python value of an InferParameter (None when unset)."""
    choice = param.WhichOneof("parameter_choice")
    return None if choice is None else getattr(param, choice)


def _parameters(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    return {key: parameter_value(value) for key, value in params.items()}


def _typed_data(spec: pb.ModelInferRequest.InferInputTensor, name: str, datatype: str, raw_bytes: bool) -> Any:
    field = CONTENTS_FIELD.get(datatype)
    filled = [f.name for f, _ in spec.contents.ListFields()]
    if field is None:
        raise InvalidInput(
            f"input '{name}': expected {datatype} data in raw_input_contents ({datatype} has no typed contents), "
            f"got {'contents.' + filled[0] if filled else 'none'}",
            field=name,
        )
    if filled and field not in filled:
        raise InvalidInput(
            f"input '{name}': expected {datatype} data in contents.{field}, got contents.{filled[0]}", field=name
        )
    values = getattr(spec.contents, field)
    if datatype != "BYTES":
        return v2.json_tensor_data(list(values), name, datatype)
    if raw_bytes:  # an image feature: each element is a PNG or JPEG file
        return list(values)
    texts: list[str] = []
    for i, raw in enumerate(values):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(
                f"input '{name}': expected UTF-8 text in element {i}, got undecodable bytes", field=name
            ) from None
    return texts


def _tensor(
    spec: pb.ModelInferRequest.InferInputTensor, index: int, raw: bytes | None, images: frozenset[str]
) -> v2.Tensor:
    name = spec.name
    if not name:
        raise InvalidInput(
            f"inputs[{index}]: expected a tensor with a non-empty 'name', got ''", field=f"inputs[{index}]"
        )
    datatype = spec.datatype
    if datatype not in v2.DATATYPES:
        raise InvalidInput(
            f"input '{name}': expected 'datatype' one of {list(v2.DATATYPES)}, got {short_repr(datatype)}", field=name
        )
    shape = v2.check_shape(name, list(spec.shape))
    if "shared_memory_region" in spec.parameters:
        raise InvalidInput(
            f"input '{name}': expected data in the request, got a shared memory region (not supported by driftgate)",
            field=name,
        )
    if raw is None:
        data = _typed_data(spec, name, datatype, name in images)
    else:
        if spec.contents.ListFields():
            raise InvalidInput(
                f"input '{name}': expected its data in raw_input_contents only (the request uses raw contents), "
                "got typed contents too",
                field=name,
            )
        data = v2.binary_tensor_data(memoryview(raw), name, datatype, math.prod(shape), name in images)
    v2.check_count(name, shape, len(data))
    return v2.Tensor(name, shape, datatype, data)


def _requested_outputs(req: pb.ModelInferRequest) -> tuple[v2.RequestedOutput, ...]:
    outputs = []
    for i, out in enumerate(req.outputs):
        if not out.name:
            raise InvalidInput(f"outputs[{i}]: expected a non-empty 'name', got ''", field=f"outputs[{i}]")
        for unsupported in ("classification", "shared_memory_region"):
            if unsupported in out.parameters:
                raise InvalidInput(
                    f"output '{out.name}': parameter '{unsupported}' is not supported; expected only 'binary_data'",
                    field=out.name,
                )
        # Raw or typed is one choice for the whole response (raw_output_contents is indexed by output).
        outputs.append(v2.RequestedOutput(out.name))
    return tuple(outputs)


def decode_infer(
    req: pb.ModelInferRequest,
    feature_names: Sequence[str],
    feature_is_numeric: Sequence[bool],
    tensor_inputs: Mapping[str, v2.TensorInput] | None = None,
) -> tuple[DecodedRequest, v2.V2Options]:
    """A ModelInferRequest -> feature columns and what the response should carry (`tensor_inputs`: the
    tensor features, as for REST).

    `options.binary_data_output` says whether to answer with raw output contents.
    """
    tensor_inputs = tensor_inputs or {}
    images = frozenset(name for name, t in tensor_inputs.items() if t.image)
    if not req.inputs:
        raise InvalidInput("'inputs': expected a non-empty array of input tensors, got []", field="inputs")
    raw = req.raw_input_contents
    if raw and len(raw) != len(req.inputs):
        raise InvalidInput(
            f"raw_input_contents: expected one entry per input ({len(req.inputs)}), got {len(raw)}",
            field="raw_input_contents",
        )
    tensors = [_tensor(spec, i, raw[i] if raw else None, images) for i, spec in enumerate(req.inputs)]
    params = _parameters(req.parameters)
    binary = params.pop(BINARY_DATA_OUTPUT, None)
    decoded = v2.tensors_to_request(tensors, feature_names, feature_is_numeric, params, tensor_inputs)
    options = v2.V2Options(
        id=req.id or None,
        outputs=_requested_outputs(req),
        binary_data_output=bool(raw) if binary is None else bool(binary),
    )
    return decoded, options


def _fill_typed(contents: pb.InferTensorContents, datatype: str, arr: np.ndarray) -> None:
    flat = arr.reshape(-1)
    field = getattr(contents, CONTENTS_FIELD[datatype])
    if datatype == "BYTES":
        field.extend(str(v).encode("utf-8") for v in flat.tolist())
    else:
        field.extend(flat.tolist())


def encode_infer(result: PredictionResult, model_name: str, options: v2.V2Options) -> pb.ModelInferResponse:
    """A result -> ModelInferResponse (raw or typed outputs, see the module docstring)."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=str(result.version), id=options.id or "")
    response.parameters[PREDICTION_IDS].string_param = ",".join(result.ids)
    for requested, datatype, arr, shape in v2.response_tensors(result, options):
        out = response.outputs.add(name=requested.name, datatype=datatype, shape=shape)
        if options.binary_data_output:
            response.raw_output_contents.append(v2.tensor_bytes(datatype, arr))
        else:
            _fill_typed(out.contents, datatype, arr)
    return response


def model_metadata(meta: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    """The REST V2 model metadata body (`v2.model_metadata`) as its gRPC message."""

    def tensors(specs: list[dict[str, Any]]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(name=t["name"], datatype=t["datatype"], shape=t["shape"])
            for t in specs
        ]

    return pb.ModelMetadataResponse(
        name=meta["name"],
        versions=meta["versions"],
        platform=meta["platform"],
        inputs=tensors(meta["inputs"]),
        outputs=tensors(meta["outputs"]),
    )


def server_metadata(meta: Mapping[str, Any]) -> pb.ServerMetadataResponse:
    """The REST V2 server metadata body (`v2.server_metadata`) as its gRPC message."""
    return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])
