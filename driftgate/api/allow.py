"""`Allow` on a 405 lists every method of the path (RFC 9110), not only those of the first route
that matched it: `/v1/endpoints/{endpoint}` has a GET route and a PUT route, and Starlette's 405
from one of them named only its own method."""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.routing import Match


def allowed_methods(request: Request) -> str | None:
    """The methods the request's path answers, as an `Allow` value; None when no route matches it."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE and route.methods:
            methods |= route.methods
    if not methods:
        return None
    if "GET" in methods:
        methods.add("HEAD")  # api/head.py answers HEAD on every GET route
    return ", ".join(sorted(methods))
