"""Store errors that reach the HTTP layer: an unreachable store is a 503 with `Retry-After`, and
repeated failures are logged once with a count, never a traceback per request.

Handled here (FastAPI's exception middleware) rather than by the catch-all handler, which Starlette
re-raises after answering: uvicorn then logs a second traceback and drops the keep-alive connection.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from driftgate.logonce import RepeatedErrors
from driftgate.store.health import StoreUnavailable, describe, is_unavailable

log = logging.getLogger("driftgate.api")


def _route(request: Request) -> str:
    """The route's template (`/v1/endpoints/{endpoint}/feedback`), so that keys stay few."""
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def install(app: FastAPI) -> None:
    errors = RepeatedErrors(log)

    @app.exception_handler(DBAPIError)
    async def _store(request: Request, exc: DBAPIError) -> JSONResponse:
        route = _route(request)
        if is_unavailable(exc):
            store = getattr(getattr(request.app.state, "services", None), "store", None)
            if store is not None:
                store.health.failed(exc)
            errors.error(
                ("unavailable", request.method, route),
                "store unavailable on %s %s: %s",
                request.method,
                route,
                describe(exc),
            )
            answer = StoreUnavailable()
            return JSONResponse(answer.to_dict(), status_code=answer.status_code, headers=answer.headers)
        errors.error(
            (type(exc).__name__, request.method, route),
            "unhandled %s on %s %s",
            type(exc).__name__,
            request.method,
            route,
            exc_info=exc,
        )
        return JSONResponse({"error": f"internal server error ({type(exc).__name__})"}, status_code=500)
