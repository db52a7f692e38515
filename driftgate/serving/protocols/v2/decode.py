"""Decoding an infer request: tensors to the feature columns of the endpoint's schema."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from driftgate.errors import InvalidInput, short_repr
from driftgate.serving.protocols.v2.tensors import load_header, parse_input, split_body
from driftgate.serving.protocols.v2.types import RequestedOutput, Tensor, TensorInput, V2Options
from driftgate.serving.result import DecodedRequest


def _is_matrix_input(tensors: list[Tensor], features: frozenset[str], tensor_inputs: Mapping[str, TensorInput]) -> bool:
    """A lone 2-D tensor is the [n, d] matrix form unless it is simply one feature's [n, 1] column, or
    named after a tensor feature."""
    if len(tensors) != 1 or len(tensors[0].shape) != 2:
        return False
    only = tensors[0]
    return not ((only.name in features and only.shape[1] == 1) or only.name in tensor_inputs)


def _matrix_columns(t: Tensor, feature_names: Sequence[str], feature_is_numeric: Sequence[bool]) -> dict[str, Any]:
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


def _per_feature_columns(
    tensors: list[Tensor], numeric: dict[str, bool], tensor_inputs: Mapping[str, TensorInput]
) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    first = tensors[0]
    for t in tensors:
        if t.name in tensor_inputs:
            if t.shape[:1] != first.shape[:1]:
                raise InvalidInput(
                    f"input '{t.name}': expected {first.shape[0]} rows to match the other inputs, got shape {t.shape}",
                    field=t.name,
                )
            if t.name in columns:
                raise InvalidInput(f"input '{t.name}': expected each input name once, got it twice", field=t.name)
            columns[t.name] = _tensor_column(t, tensor_inputs[t.name])
            continue
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


def _tensor_column(t: Tensor, spec: TensorInput) -> Any:
    """A tensor feature's input as one array (n, *shape); an image's BYTES as the n files' bytes."""
    n, size = t.shape[0] if t.shape else 0, math.prod(spec.shape)
    if t.datatype == "BYTES":
        if not spec.image:
            raise InvalidInput(
                f"input '{t.name}': expected a numeric tensor of shape [n, {', '.join(map(str, spec.shape))}], "
                "got BYTES (encoded files are for image features)",
                field=t.name,
            )
        if not (len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1)):
            raise InvalidInput(
                f"input '{t.name}': expected BYTES of shape [n] or [n, 1] (one PNG or JPEG file a row), got {t.shape}",
                field=t.name,
            )
        return t.data
    if list(t.shape[1:]) not in (list(spec.shape), [size]):
        forms = f"[n, {', '.join(map(str, spec.shape))}]" + (f" or [n, {size}]" if len(spec.shape) > 1 else "")
        raise InvalidInput(f"input '{t.name}': expected shape {forms}, got {t.shape}", field=t.name)
    return np.asarray(t.data).reshape((n, *spec.shape))


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
    tensor_inputs: Mapping[str, TensorInput] | None = None,
) -> tuple[DecodedRequest, V2Options]:
    """Decode a V2 infer request (JSON, or JSON header + binary tensors) into feature columns.

    `header_length` is the parsed `Inference-Header-Content-Length` HTTP header, or None.
    Numeric columns come back as numpy arrays, BYTES columns as lists of str; a tensor feature's
    (`tensor_inputs`) as one array (n, *shape), or the files' bytes for an image sent as BYTES.
    """
    tensor_inputs = tensor_inputs or {}
    if len(feature_names) != len(feature_is_numeric):
        raise ValueError("feature_names and feature_is_numeric must have the same length")
    header, tail = split_body(body, header_length)
    req = load_header(header, tail.present)
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput(f"'parameters': expected an object, got {short_repr(params)}", field="parameters")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(
            f"'inputs': expected a non-empty array of input tensors, got {short_repr(inputs)}", field="inputs"
        )
    images = frozenset(name for name, t in tensor_inputs.items() if t.image)
    tensors = [parse_input(spec, i, tail, images) for i, spec in enumerate(inputs)]
    if tail.present and tail.offset != len(tail.view):
        raise InvalidInput(
            f"binary data: expected {tail.offset} bytes after the JSON header (the sum of "
            f"binary_data_size), got {len(tail.view)}",
            field="inputs",
        )
    request_params = {k: v for k, v in params.items() if k != "binary_data_output"}
    decoded = tensors_to_request(tensors, feature_names, feature_is_numeric, request_params, tensor_inputs)
    return decoded, _parse_options(req, params)


def tensors_to_request(
    tensors: list[Tensor],
    feature_names: Sequence[str],
    feature_is_numeric: Sequence[bool],
    parameters: dict[str, Any],
    tensor_inputs: Mapping[str, TensorInput] | None = None,
) -> DecodedRequest:
    """Decoded input tensors -> feature columns (REST and gRPC share this): one tensor per feature
    (a tensor feature's [n, *shape]), or a single numeric [n, d] matrix."""
    tensor_inputs = tensor_inputs or {}
    if _is_matrix_input(tensors, frozenset(feature_names), tensor_inputs):
        columns = _matrix_columns(tensors[0], feature_names, feature_is_numeric)
    else:
        numeric = dict(zip(feature_names, feature_is_numeric, strict=True))
        columns = _per_feature_columns(tensors, numeric, tensor_inputs)
    n_rows = tensors[0].shape[0] if tensors[0].shape else 0
    if n_rows == 0:
        raise InvalidInput(
            f"input '{tensors[0].name}': expected at least one row, got shape {tensors[0].shape}", field=tensors[0].name
        )
    return DecodedRequest(columns=columns, n_rows=n_rows, parameters=parameters)
