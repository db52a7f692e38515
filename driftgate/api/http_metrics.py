"""`driftgate_http_requests_total{method, route, status}`: every HTTP answer, 4xx and 5xx included, by
route template (`/v1/endpoints/{endpoint}/predict`), so labels stay bounded whatever the paths.

A pure ASGI middleware, outermost of the app's own, so answers given before routing (413 from the
body limit) are counted too; a request no route matches is counted under `unmatched`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless an answer starts: an exception escaped and the server answers 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            _count(scope, status)


def _count(scope: Scope, status: int) -> None:
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    if services is None:  # before startup or after shutdown
        return
    services.metrics.http_requests.labels(scope.get("method", ""), route_template(scope), str(status)).inc()


def route_template(scope: Scope) -> str:
    """The path template of the route that answered, or that would have (a request refused before
    routing); `unmatched` when none matches."""
    route: Any = scope.get("route")
    if route is None:
        app = scope.get("app")
        partial = None
        for candidate in _leaves(getattr(getattr(app, "router", None), "routes", ())):
            match, _ = candidate.matches({**scope})
            if match == Match.FULL:
                route = candidate
                break
            if match == Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _leaves(routes: Iterable[Any]) -> Iterator[Any]:
    """The app's routes, those of included routers flattened (FastAPI keeps an included router as
    one entry holding the `original_router`)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaves(inner.routes)
        else:
            yield route
