"""Bearer tokens with scopes. With no token in the store the API is open (loopback use)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from driftgate.errors import Forbidden, Unauthorized
from driftgate.logonce import RepeatedErrors
from driftgate.store import Store
from driftgate.store.health import StoreUnavailable, describe
from driftgate.store.tokens import digest

REFRESH_SECONDS = 2.0
log = logging.getLogger("driftgate.auth")


class TokenCache:
    """{digest: scope}, refreshed every few seconds so new and revoked tokens apply quickly.

    A store outage must not stop serving: when a refresh fails the last table read stays in use
    (a token revoked meanwhile keeps working until the store is back) and the next try waits
    another `REFRESH_SECONDS`. While the store is known to be down, requests do not wait for that
    try either: it runs in the background. Concurrent requests share one refresh.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._scopes: dict[str, str] = {}
        self._loaded_at = 0.0
        self._loaded = False  # whether a read ever succeeded: before that there is nothing to fall back on
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._errors = RepeatedErrors(log)

    def _fresh(self) -> bool:
        return time.monotonic() - self._loaded_at <= REFRESH_SECONDS

    async def scopes(self) -> dict[str, str]:
        if self._fresh():
            return self._scopes
        if self._loaded and not self.store.health.available:
            # Degraded: answer from the cache now; one background try per interval.
            if self._background is None or self._background.done():
                self._background = asyncio.create_task(self._refresh())
            return self._scopes
        await self._refresh()
        if not self._loaded:
            raise StoreUnavailable("the store is unavailable and no API tokens were read yet; retry shortly")
        return self._scopes

    async def _refresh(self) -> None:
        async with self._lock:
            if self._fresh():  # another request refreshed while this one waited
                return
            try:
                scopes = await run_in_threadpool(self.store.tokens.scopes_by_digest)
            except Exception as exc:
                # Keep the last good table; try again after the interval, not on every request.
                self._loaded_at = time.monotonic()
                self._errors.error(
                    "refresh",
                    "API tokens could not be re-read (%s); using the %d read before",
                    describe(exc),
                    len(self._scopes),
                )
                return
            self._scopes, self._loaded_at, self._loaded = scopes, time.monotonic(), True
            self.store.health.ok()
            self._errors.resolved("refresh", "API tokens are read from the store again")

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


async def require_metrics(request: Request) -> None:
    """`/metrics`: open unless the server runs with `metrics_auth`; then a token with scope `metrics`
    (or `admin`) is needed, as soon as any token exists."""
    if request.app.state.services.settings.metrics_auth:
        await require("metrics")(request)
