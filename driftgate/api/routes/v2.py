"""Open Inference Protocol (KServe V2) REST routes; a V2 "model" is a driftgate endpoint."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from driftgate import __version__
from driftgate.api.auth import require
from driftgate.api.limits import admitted, decode_request, read_body
from driftgate.api.routes import request_body
from driftgate.api.services import services
from driftgate.errors import BadRequest, NotReady
from driftgate.rollout.policy import answering
from driftgate.serving.dataplane import EndpointState
from driftgate.serving.protocols import v2

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
scored = APIRouter(prefix="/v2", tags=["open inference protocol"], dependencies=[Depends(require("predict"))])

INFER_BODY = request_body(
    {"type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array"}}},
    {"inputs": [{"name": "amount", "shape": [1], "datatype": "FP64", "data": [12.5]}]},
    {v2.CONTENT_TYPE_BINARY: {"schema": {"type": "string", "format": "binary"}}},
)


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return v2.server_metadata(__version__)


@router.get("/health/live")
async def live() -> dict[str, Any]:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    """200 while the server serves. A store outage does not make it unready (predictions go on from
    cached tokens and endpoint config, their log rows are spooled) but degraded, and the body says
    what: `{"ready": true, "status": "degraded", "store": "unavailable", ...}`."""
    svc = services(request)
    is_ready = svc.ready
    body: dict[str, Any] = {"ready": is_ready, **svc.store.health.snapshot()}
    recorder = svc.recorder
    spooling = not recorder.store_available or recorder.backlog_files > 0
    body["prediction_log"] = "spooling" if spooling else "ok"
    if spooling:
        body["prediction_log_spool_files"] = recorder.backlog_files
    degraded = body["store"] != "ok" or spooling
    body["status"] = "unready" if not is_ready else "degraded" if degraded else "ok"
    return JSONResponse(body, status_code=200 if is_ready else 503)


def _input_datatype(kind: str) -> str:
    return {"categorical": "BYTES", "boolean": "BOOL", "integer": "INT64"}.get(kind, "FP64")


def _metadata(state: EndpointState) -> dict[str, Any]:
    stable = state.stable
    outputs: list[tuple[str, str, list[int]]] = []
    classes = stable.classes
    if stable.output.get("kind") == "classification":
        label_type = "BYTES" if classes and isinstance(classes[0], str) else "INT64"
        outputs = [("predict", label_type, [-1]), ("predict_proba", "FP64", [-1, len(classes or [])])]
    else:
        outputs = [("predict", "FP64", [-1])]
    inputs = [(f.name, _input_datatype(f.kind)) for f in stable.schema.features]
    versions = sorted({str(ref.version) for ref in answering(state.policy)})
    return v2.model_metadata(state.name, versions, inputs, outputs, f"driftgate_{stable.format}")


@scored.get("/models/{endpoint}")
async def model_metadata(request: Request, endpoint: str) -> dict[str, Any]:
    return _metadata(services(request).dataplane.state(endpoint))


@scored.get("/models/{endpoint}/versions/{version}")
async def model_version_metadata(request: Request, endpoint: str, version: str) -> dict[str, Any]:
    return _metadata(services(request).dataplane.state(endpoint))


@scored.get("/models/{endpoint}/ready")
async def model_ready(request: Request, endpoint: str) -> dict[str, Any]:
    state = services(request).dataplane.state(endpoint)
    if not state.versions:
        raise NotReady(f"endpoint {endpoint!r} has no loaded version")
    return {"name": endpoint, "ready": True}


def check_outputs(state: EndpointState, options: v2.V2Options) -> None:
    """422 for a requested output no version of the endpoint can give, before anything is scored or
    logged (REST and gRPC). The encoder checks again: a classifier may still answer without probabilities."""
    if not options.outputs:
        return
    classifier = any(v.output.get("kind") == "classification" for v in state.versions.values())
    guard = state.config.output_guard
    reviews = guard is not None and guard.action == "review"
    v2.check_requested_outputs(options, v2.answerable_outputs(classifier, state.config.automation, reviews))


def _header_length(request: Request) -> int | None:
    raw = request.headers.get(v2.HEADER_LENGTH)
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest(f"{v2.HEADER_LENGTH} must be a non-negative integer, got {raw!r}", field=v2.HEADER_LENGTH)
    return int(raw)


async def _infer(request: Request, endpoint: str) -> Response:
    svc = services(request)
    plane = svc.dataplane
    state = plane.state(endpoint)
    schema = state.stable.schema
    body, length = await read_body(request, svc.settings.big_body_bytes), _header_length(request)
    numeric = [f.is_numeric for f in schema.features]
    decoded, options = await decode_request(
        svc, endpoint, len(body), partial(v2.decode_infer, body, length, schema.names, numeric)
    )
    check_outputs(state, options)
    with admitted(svc, endpoint, decoded.n_rows):
        result = await plane.predict(endpoint, decoded)
    body, headers = v2.encode_infer(result, endpoint, options)
    return Response(body, headers=headers)


@scored.post("/models/{endpoint}/infer", openapi_extra=INFER_BODY)
async def infer(request: Request, endpoint: str) -> Response:
    return await _infer(request, endpoint)


@scored.post("/models/{endpoint}/versions/{version}/infer", openapi_extra=INFER_BODY)
async def infer_version(request: Request, endpoint: str, version: str) -> Response:
    return await _infer(request, endpoint)
