"""Scoring routes: native predict and the MLflow scoring protocol; feedback labels."""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from driftgate.api.auth import require
from driftgate.api.limits import admitted, decode_request, read_body
from driftgate.api.routes import JSON, request_body
from driftgate.api.services import services
from driftgate.errors import BadRequest, PayloadTooLarge
from driftgate.serving.protocols.mlflow import decode_mlflow, encode_mlflow
from driftgate.serving.protocols.native import decode_native, encode_native

router = APIRouter(prefix="/v1/endpoints", tags=["predict"], dependencies=[Depends(require("predict"))])

PREDICT_BODY = request_body(
    {
        "type": "object",
        "properties": {
            "instances": {"type": "array", "items": {"type": "object"}},
            "dataframe_split": {
                "type": "object",
                "properties": {"columns": {"type": "array"}, "data": {"type": "array"}},
            },
        },
    },
    {"instances": [{"amount": 12.5, "merchant": "online"}]},
)
MLFLOW_BODY = request_body(
    {"type": "object"},
    {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}},
    {"text/csv": {"schema": {"type": "string"}}},
)


@router.post("/{endpoint}/predict", openapi_extra=PREDICT_BODY)
async def predict(request: Request, endpoint: str) -> Response:
    svc = services(request)
    plane = svc.dataplane
    schema = plane.state(endpoint).stable.schema
    tensors = frozenset(f.name for f in schema.features if f.kind == "tensor")
    body = await read_body(request, svc.settings.big_body_bytes)
    decoded = await decode_request(svc, endpoint, len(body), partial(decode_native, body, schema.names, tensors))
    with admitted(svc, endpoint, decoded.n_rows):
        result = await plane.predict(endpoint, decoded)
    return Response(encode_native(result), media_type=JSON)


@router.post("/{endpoint}/invocations", openapi_extra=MLFLOW_BODY)
async def invocations(request: Request, endpoint: str) -> Response:
    svc = services(request)
    plane = svc.dataplane
    names = plane.state(endpoint).stable.schema.names
    body, content_type = await read_body(request, svc.settings.big_body_bytes), request.headers.get("content-type")
    decoded = await decode_request(svc, endpoint, len(body), partial(decode_mlflow, body, content_type, names))
    with admitted(svc, endpoint, decoded.n_rows):
        result = await plane.predict(endpoint, decoded)
    return Response(encode_mlflow(result), media_type=JSON)


MAX_LABEL_BYTES = 64 * 1024  # the default of `Settings.max_label_bytes`
FEEDBACK_BODY = request_body(
    {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "label"],
                    "properties": {
                        "id": {"type": "string"},
                        # As `parse_labels` takes them: any scalar; objects and arrays are refused.
                        "label": {"type": ["number", "string", "boolean", "null"]},
                    },
                },
            }
        },
    },
    {"labels": [{"id": "0190f...", "label": 1}]},
)


def parse_labels(body: bytes, max_label_bytes: int = MAX_LABEL_BYTES) -> list[tuple[str, Any]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    labels = doc.get("labels") if isinstance(doc, dict) else None
    if not isinstance(labels, list):
        raise BadRequest('expected {"labels": [{"id": "...", "label": value}, ...]}', field="labels")
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(labels):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or "label" not in item:
            raise BadRequest(f"labels[{i}] must be an object with a string 'id' and a 'label'", field=f"labels[{i}]")
        if isinstance(item["label"], dict | list):
            raise BadRequest(f"labels[{i}].label must be a scalar (number, string or bool)", field=f"labels[{i}]")
        if isinstance(item["label"], str) and len(item["label"].encode()) > max_label_bytes:
            raise PayloadTooLarge(
                f"labels[{i}].label is {len(item['label'].encode())} bytes; a label may be at most "
                f"{max_label_bytes} bytes (the server's max_label_bytes)",
                field=f"labels[{i}].label",
            )
        out.append((item["id"], item["label"]))
    return out


@router.post("/{endpoint}/feedback", openapi_extra=FEEDBACK_BODY)
async def feedback(request: Request, endpoint: str) -> dict[str, Any]:
    svc = services(request)
    labels = parse_labels(await request.body(), svc.settings.max_label_bytes)
    return (await svc.outcomes.label(endpoint, labels)).to_dict()
