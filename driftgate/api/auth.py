"""Bearer tokens with scopes. With no token in the store the API is open (loopback use)."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from driftgate.errors import Forbidden, Unauthorized
from driftgate.store import Store
from driftgate.store.tokens import digest

REFRESH_SECONDS = 2.0


class TokenCache:
    """{digest: scope}, refreshed every few seconds so new and revoked tokens apply quickly."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._scopes: dict[str, str] = {}
        self._loaded_at = 0.0

    async def scopes(self) -> dict[str, str]:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            self._scopes = await run_in_threadpool(self.store.tokens.scopes_by_digest)
            self._loaded_at = time.monotonic()
        return self._scopes

    def any_configured(self) -> bool:
        return bool(self.store.tokens.scopes_by_digest())


def require(scope: str) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A dependency: the request must carry a token whose scope covers `scope` (admin covers all)."""

    async def check(request: Request) -> None:
        cache: TokenCache = request.app.state.services.tokens
        scopes = await cache.scopes()
        if not scopes:
            return
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        granted = scopes.get(digest(header[7:].strip()))
        if granted is None:
            raise Unauthorized("unknown or revoked token")
        if granted != "admin" and granted != scope:
            raise Forbidden(f"this token has scope {granted!r}; this call needs {scope!r}")

    return check
