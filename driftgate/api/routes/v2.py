"""Open Inference Protocol (KServe V2) REST routes; a V2 "model" is a driftgate endpoint."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from driftgate import __version__
from driftgate.api.auth import require
from driftgate.api.limits import admitted, decode_request, read_body
from driftgate.api.routes import request_body
from driftgate.api.services import services
from driftgate.api.v2_stats import model_stats, totals
from driftgate.errors import BadRequest, Conflict, NotFound, NotReady
from driftgate.registry.schema import FeatureSpec, InputSchema
from driftgate.rollout.policy import VersionRef, answering
from driftgate.serving.dataplane import EndpointState
from driftgate.serving.protocols import v2
from driftgate.serving.runtime import LoadedVersion

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
scored = APIRouter(prefix="/v2", tags=["open inference protocol"], dependencies=[Depends(require("predict"))])

INFER_BODY = request_body(
    {"type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array"}}},
    {"inputs": [{"name": "amount", "shape": [1], "datatype": "FP64", "data": [12.5]}]},
    {v2.CONTENT_TYPE_BINARY: {"schema": {"type": "string", "format": "binary"}}},
)


@router.get("")
async def server_metadata() -> dict[str, Any]:
    body = v2.server_metadata(__version__)
    # Statistics are served over REST only (the gRPC service has no ModelStatistics RPC).
    return {**body, "extensions": [*body["extensions"], "statistics"]}


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
    return {"categorical": "BYTES", "text": "BYTES", "boolean": "BOOL", "integer": "INT64"}.get(kind, "FP64")


def _input_metadata(feature: FeatureSpec) -> tuple[str, str, list[int]]:
    """(name, datatype, shape) of a feature's input: a tensor's own datatype and [-1, *shape]."""
    if feature.kind == "tensor":
        datatype = v2.DTYPE_DATATYPES.get(feature.dtype or "float32", "FP32")
        return feature.name, datatype, [-1, *(feature.shape or ())]
    return feature.name, _input_datatype(feature.kind), [-1]


def tensor_inputs(schema: InputSchema) -> dict[str, v2.TensorInput]:
    """The schema's tensor features as the V2 decoders take them (REST and gRPC)."""
    return {
        f.name: v2.TensorInput(tuple(f.shape or ()), f.media == "image") for f in schema.features if f.kind == "tensor"
    }


def served_version(state: EndpointState, version: str | None) -> VersionRef | None:
    """The version a V2 call names (`/versions/{v}/...`, gRPC `model_version`): one of the versions the
    endpoint answers from (its champion, a rollout's candidate or shadow, a blue-green standby), or 404
    naming it. None when no version is named: the endpoint's traffic policy picks."""
    if not version:
        return None
    served = answering(state.policy)
    matches = [ref for ref in served if str(ref.version) == version]
    if not matches:
        listed = sorted({str(ref.version) for ref in served})
        raise NotFound(
            f"endpoint {state.name!r} has no version {version!r}; it serves versions {listed}", field="model_version"
        )
    if len(matches) > 1:  # two models with one version number behind one endpoint (an A/B test, say)
        raise Conflict(
            f"endpoint {state.name!r} serves version {version!r} of several models "
            f"({', '.join(str(ref) for ref in matches)}); leave the version out",
            field="model_version",
        )
    return matches[0]


def _metadata(state: EndpointState, ref: VersionRef | None = None) -> dict[str, Any]:
    """The endpoint's metadata: its champion's inputs and outputs, or those of the version `ref`."""
    stable: LoadedVersion = state.stable if ref is None else state.versions[ref]
    outputs: list[tuple[str, str, list[int]]] = []
    classes = stable.classes
    if stable.output.get("kind") == "classification":
        label_type = "BYTES" if classes and isinstance(classes[0], str) else "INT64"
        outputs = [("predict", label_type, [-1]), ("predict_proba", "FP64", [-1, len(classes or [])])]
    else:
        outputs = [("predict", "FP64", [-1])]
    inputs = [_input_metadata(f) for f in stable.schema.features]
    versions = sorted({str(ref.version) for ref in answering(state.policy)})
    return v2.model_metadata(state.name, versions, inputs, outputs, f"driftgate_{stable.format}")


# Triton's statistics extension (api/v2_stats.py); before /models/{endpoint} so "stats" is not a name.
@scored.get("/models/stats")
async def all_stats(request: Request) -> dict[str, Any]:
    plane = services(request).dataplane
    return {"model_stats": [s for name in plane.endpoint_names() for s in await _stats(request, name, None)]}


@scored.get("/models/{endpoint}/stats")
async def endpoint_stats(request: Request, endpoint: str) -> dict[str, Any]:
    return {"model_stats": await _stats(request, endpoint, None)}


@scored.get("/models/{endpoint}/versions/{version}/stats")
async def version_stats(request: Request, endpoint: str, version: str) -> dict[str, Any]:
    return {"model_stats": await _stats(request, endpoint, version)}


async def _stats(request: Request, endpoint: str, version: str | None) -> list[dict[str, Any]]:
    svc = services(request)
    state = svc.dataplane.state(endpoint)
    ref = served_version(state, version)
    refs = [ref] if ref is not None else sorted(answering(state.policy), key=lambda r: (r.version, r.model))
    counted = await run_in_threadpool(totals, svc.metrics, endpoint)
    versions = dict.fromkeys(str(r.version) for r in refs)  # one entry per version number, in order
    return [model_stats(endpoint, v, counted.get(v, {})) for v in versions]


@scored.get("/models/{endpoint}")
async def model_metadata(request: Request, endpoint: str) -> dict[str, Any]:
    return _metadata(services(request).dataplane.state(endpoint))


@scored.get("/models/{endpoint}/versions/{version}")
async def model_version_metadata(request: Request, endpoint: str, version: str) -> dict[str, Any]:
    state = services(request).dataplane.state(endpoint)
    return _metadata(state, served_version(state, version))


# Readiness is open like the server's health routes: probes (Kubernetes, tritonclient's
# `is_model_ready`) carry no token, and the answer says nothing a caller could use against the server.
@router.get("/models/{endpoint}/ready")
async def model_ready(request: Request, endpoint: str) -> dict[str, Any]:
    return _model_ready(request, endpoint, None)


@router.get("/models/{endpoint}/versions/{version}/ready")
async def model_version_ready(request: Request, endpoint: str, version: str) -> dict[str, Any]:
    return _model_ready(request, endpoint, version)


def _model_ready(request: Request, endpoint: str, version: str | None) -> dict[str, Any]:
    state = services(request).dataplane.state(endpoint)
    if not state.versions:
        raise NotReady(f"endpoint {endpoint!r} has no loaded version")
    ref = served_version(state, version)
    return {"name": endpoint, "ready": True, **({"version": str(ref.version)} if ref else {})}


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


async def _infer(request: Request, endpoint: str, version: str | None) -> Response:
    svc = services(request)
    plane = svc.dataplane
    state = plane.state(endpoint)
    ref = served_version(state, version)
    schema = (state.stable if ref is None else state.versions[ref]).schema
    body, length = await read_body(request, svc.settings.big_body_bytes), _header_length(request)
    numeric = [f.is_numeric for f in schema.features]
    decode = partial(v2.decode_infer, body, length, schema.names, numeric, tensor_inputs(schema))
    decoded, options = await decode_request(svc, endpoint, len(body), decode)
    check_outputs(state, options)
    with admitted(svc, endpoint, decoded.n_rows):
        result = await plane.predict(endpoint, decoded, ref)
    body, headers = v2.encode_infer(result, endpoint, options)
    return Response(body, headers=headers)


@scored.post("/models/{endpoint}/infer", openapi_extra=INFER_BODY)
async def infer(request: Request, endpoint: str) -> Response:
    return await _infer(request, endpoint, None)


@scored.post("/models/{endpoint}/versions/{version}/infer", openapi_extra=INFER_BODY)
async def infer_version(request: Request, endpoint: str, version: str) -> Response:
    """Answered by that version, even while a rollout splits traffic (its rows are logged as its own)."""
    return await _infer(request, endpoint, version)
