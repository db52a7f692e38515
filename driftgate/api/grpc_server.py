"""The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`) on its own port.

It runs on the app's event loop (started and stopped by the app's lifespan, `driftgate serve
--grpc-port P`) and serves through the same path as the REST V2 routes (`api/routes/v2.py`): the same
bearer-token check (`require`, fed the `authorization` metadata), the same request limits
(`decode_request`, `admitted`), the same data plane (validation, batching, routing, logging,
prediction ids) and the same tensor codec. Errors carry the REST message with a gRPC status code
(`STATUS_CODES`); `Retry-After` travels as trailing metadata `retry-after`.

With `--workers N` every worker binds the port: grpcio sets SO_REUSEPORT on Linux by default
(`grpc.so_reuseport`), so the kernel spreads new connections over the workers. A gRPC connection is
long-lived (HTTP/2), so one client channel stays with one worker; clients that want to use every
worker open several channels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import grpc
from fastapi import FastAPI, Request
from google.protobuf.message import Message as ProtoMessage
from sqlalchemy.exc import DBAPIError

from driftgate import __version__
from driftgate.api.auth import require
from driftgate.api.grpc_decode import decode_infer_raw, model_of, parse_infer
from driftgate.api.limits import admitted, decode_request
from driftgate.api.routes.v2 import _metadata, check_outputs, served_version, tensor_inputs
from driftgate.api.services import Services
from driftgate.errors import DriftgateError, Overloaded
from driftgate.serving.protocols import v2
from driftgate.serving.protocols.grpc import codec
from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb
from driftgate.settings import Settings
from driftgate.store.health import StoreUnavailable, describe, is_unavailable

log = logging.getLogger("driftgate.grpc")

# The protocol's service name: method paths are /inference.GRPCInferenceService/<Method>.
SERVICE = "inference.GRPCInferenceService"
# Seconds in-flight calls may take to finish when the server stops (uvicorn's default drain for HTTP
# has already passed by then; see driftgate/server/server.py).
STOP_GRACE_S = 10.0

# REST status -> gRPC code. Input errors (400, 413, 422) are INVALID_ARGUMENT: sending the same
# request again cannot help. Backpressure (429, and 503 from `Overloaded`) is RESOURCE_EXHAUSTED; any
# other 503 (a store outage, a model not loaded) is UNAVAILABLE, gRPC's "retry later".
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

Req = TypeVar("Req", bound=ProtoMessage)


def status_code(exc: DriftgateError) -> grpc.StatusCode:
    if isinstance(exc, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return STATUS_CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)


class GrpcService:
    """The six RPCs over one app's services."""

    def __init__(self, app: FastAPI, svc: Services) -> None:
        self.app = app
        self.svc = svc
        self._check_predict = require("predict")

    async def authorize(self, context: grpc.aio.ServicerContext) -> None:
        """REST's check, fed the call's `authorization` metadata (gRPC keys are lower-case)."""
        header = next((str(v) for k, v in context.invocation_metadata() or () if k == "authorization"), None)
        headers = [] if header is None else [(b"authorization", header.encode("latin-1", "replace"))]
        scope = {"type": "http", "method": "POST", "path": "/grpc", "headers": headers, "app": self.app}
        await self._check_predict(Request(scope))

    # ---- health and metadata ----------------------------------------------------------------

    async def server_live(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext) -> ProtoMessage:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext) -> ProtoMessage:
        return pb.ServerReadyResponse(ready=self.svc.ready)

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> ProtoMessage:
        return codec.server_metadata(v2.server_metadata(__version__))

    async def model_ready(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext) -> ProtoMessage:
        # Open like the server's own readiness: probes carry no token. An unknown endpoint or version
        # is NOT_FOUND; a known one with no loaded version is simply not ready.
        state = self.svc.dataplane.state(request.name)
        served_version(state, request.version)
        return pb.ModelReadyResponse(ready=bool(state.versions))

    async def model_metadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext) -> ProtoMessage:
        await self.authorize(context)
        state = self.svc.dataplane.state(request.name)
        return codec.model_metadata(_metadata(state, served_version(state, request.version)))

    # ---- inference ------------------------------------------------------------------------------

    async def model_infer(self, raw: bytes, context: grpc.aio.ServicerContext) -> ProtoMessage:
        await self.authorize(context)
        svc = self.svc
        # Parsed here, not by grpc on the event loop. A big message is parsed and decoded in the decoder
        # process, as a big REST body is (api/grpc_decode.py): only its model name is read here.
        big = len(raw) > svc.settings.big_body_bytes
        request: pb.ModelInferRequest | None = None
        model = model_of(raw) if big else None
        if model is None:  # small, or not well formed (the parse says how, as before)
            request = await asyncio.to_thread(parse_infer, raw) if big else parse_infer(raw)
            model = (request.model_name, request.model_version)
        endpoint, version = model
        plane = svc.dataplane
        state = plane.state(endpoint)
        # A named version answers every row itself (REST's /versions/{v}/infer); unknown ones are NOT_FOUND.
        ref = served_version(state, version)
        schema = (state.stable if ref is None else state.versions[ref]).schema
        numeric, tensors = [f.is_numeric for f in schema.features], tensor_inputs(schema)
        decode = (
            partial(decode_infer_raw, raw, schema.names, numeric, tensors)
            if request is None
            else partial(codec.decode_infer, request, schema.names, numeric, tensors)
        )
        decoded, options = await decode_request(svc, endpoint, len(raw), decode)
        check_outputs(state, options)
        with admitted(svc, endpoint, decoded.n_rows):
            result = await plane.predict(endpoint, decoded, ref)
        return codec.encode_infer(result, endpoint, options)


def _handler(
    method: str, call: Callable[[Any, grpc.aio.ServicerContext], Awaitable[ProtoMessage]], request_type: type | None
) -> grpc.RpcMethodHandler:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> ProtoMessage:
        try:
            return await call(request, context)
        except DriftgateError as exc:
            await _abort(context, status_code(exc), exc.message, getattr(exc, "headers", None))
        except DBAPIError as exc:
            if is_unavailable(exc):
                log.warning("store unavailable on gRPC %s: %s", method, describe(exc))
                answer = StoreUnavailable()
                await _abort(context, grpc.StatusCode.UNAVAILABLE, answer.message, answer.headers)
            log.error("unhandled %s on gRPC %s", type(exc).__name__, method, exc_info=exc)
            await _abort(context, grpc.StatusCode.INTERNAL, f"internal server error ({type(exc).__name__})", None)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            log.error("unhandled %s on gRPC %s", type(exc).__name__, method, exc_info=exc)
            await _abort(context, grpc.StatusCode.INTERNAL, f"internal server error ({type(exc).__name__})", None)
        raise AssertionError("unreachable: abort raises")

    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_type.FromString if request_type is not None else None,  # type: ignore[attr-defined]
        response_serializer=lambda message: message.SerializeToString(),
    )


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, headers: dict[str, str] | None
) -> None:
    if headers and "Retry-After" in headers:
        context.set_trailing_metadata((("retry-after", headers["Retry-After"]),))
    await context.abort(code, message)


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """A grpc.aio server for one app, started and stopped on the app's event loop."""

    def __init__(self, app: FastAPI, svc: Services, settings: Settings) -> None:
        self.settings = settings
        service = GrpcService(app, svc)
        handlers = {
            "ServerLive": _handler("ServerLive", service.server_live, pb.ServerLiveRequest),
            "ServerReady": _handler("ServerReady", service.server_ready, pb.ServerReadyRequest),
            "ModelReady": _handler("ModelReady", service.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": _handler("ServerMetadata", service.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": _handler("ModelMetadata", service.model_metadata, pb.ModelMetadataRequest),
            # Raw bytes in: parsed by the service (off the loop when big).
            "ModelInfer": _handler("ModelInfer", service.model_infer, None),
        }
        self.server = grpc.aio.server(
            options=[
                # The same ceiling as a REST body; responses are bounded by the rows a request may carry.
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                ("grpc.max_send_message_length", -1),
                # grpcio's Linux default, said explicitly: `--workers N` processes share the port.
                ("grpc.so_reuseport", 1),
            ]
        )
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = 0

    async def start(self) -> int:
        """Bind and start; returns the bound port. Raises RuntimeError naming the port if it is taken."""
        address = _bind_address(self.settings.host, self.settings.grpc_port)
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(
                f"gRPC: cannot listen on {address} ({exc}); pass another --grpc-port, or --grpc-port 0 to serve "
                "without gRPC"
            ) from None
        if not self.port:  # older grpcio answer 0 instead of raising
            raise RuntimeError(f"gRPC: cannot listen on {address}; pass another --grpc-port, or --grpc-port 0")
        await self.server.start()
        log.info("gRPC (Open Inference Protocol) listening on %s", _bind_address(self.settings.host, self.port))
        return self.port

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Refuse new calls, let in-flight ones finish for up to `grace` seconds, then cancel them."""
        await self.server.stop(grace)
