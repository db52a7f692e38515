"""Every error leaves as JSON `{"error": ...}` with its status: never HTML, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from driftgate.api.allow import allowed_methods
from driftgate.errors import DriftgateError

log = logging.getLogger("driftgate.api")


# MLflow's error codes by status, for the MLflow protocol routes: its clients read `error_code`
# and `message`; ours read `error`. Those routes send all three.
MLFLOW_ERROR_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT", 413: "BAD_REQUEST", 415: "BAD_REQUEST", 422: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip


def error_response(request: Request, body: dict, status: int, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The error as JSON; on MLflow protocol routes with MLflow's `error_code` and `message` too."""
    if request.url.path.endswith("/invocations"):
        body = {**body, "error_code": MLFLOW_ERROR_CODES.get(status, "INTERNAL_ERROR"), "message": body["error"]}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    return f"{where}: {error.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(DriftgateError)
    async def _driftgate(request: Request, exc: DriftgateError) -> JSONResponse:
        return error_response(request, exc.to_dict(), exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        message = "; ".join(_describe(e) for e in errors[:5]) or "invalid request"
        return error_response(request, {"error": message}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405 and (allow := allowed_methods(request)):
            headers = {**(headers or {}), "Allow": allow}
        return error_response(request, {"error": str(exc.detail)}, exc.status_code, headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The caller hung up mid-body (a load generator's last requests, an impatient client): nothing
        # was scored or stored, and nobody reads an answer. Not a server error.
        log.debug("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return error_response(request, {"error": f"internal server error ({type(exc).__name__})"}, 500)
