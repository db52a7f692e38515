"""`Allow` on a 405 lists every method of the path (RFC 9110), not only those of the first route
that matched it: `/v1/endpoints/{endpoint}` has a GET route and a PUT route, and Starlette's 405
from one of them named only its own method."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Match

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before included routers were kept whole: app.routes are the routes

    def iter_route_contexts(routes: Iterable[BaseRoute]) -> Iterator[Any]:  # type: ignore[misc]
        return iter(routes)


def route_contexts(routes: Iterable[BaseRoute]) -> Iterator[Any]:
    """Every route of the app, those of included routers too, with their router's dependencies."""
    return iter_route_contexts(list(routes))


def allowed_methods(request: Request) -> str | None:
    """The methods the request's path answers, as an `Allow` value; None when no route matches it."""
    methods: set[str] = set()
    for route in route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE and getattr(route, "methods", None):  # mounts have none
            methods |= route.methods
    if not methods:
        return None
    if "GET" in methods:
        methods.add("HEAD")  # api/head.py answers HEAD on every GET route
    return ", ".join(sorted(methods))
