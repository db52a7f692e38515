"""Whether the store answers: what readiness reports and what lets serving go on without it.

Nothing here queries the database. The engine reports its own connection failures (`watch`: a
`handle_error` listener) and every new connection it makes; the server's endpoint poller, which
reads the store every `sync_interval`, reports its successes and failures too. So the state is at
most one poll old, and a readiness probe costs no query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError

from driftgate.errors import NotReady

log = logging.getLogger("driftgate.store")

# psycopg: OperationalError (connection refused or closed, admin shutdown); sqlite3: locked, I/O.
_UNAVAILABLE = {"OperationalError", "InterfaceError", "AdminShutdown", "CannotConnectNow", "ConnectionTimeout"}


def is_unavailable(exc: BaseException) -> bool:
    """The store could not be reached or could not answer (not a bug in a query)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        return orig is not None and type(orig).__name__ in _UNAVAILABLE
    # Raw driver errors (the COPY path talks to psycopg directly).
    module = type(exc).__module__ or ""
    return (module.startswith("psycopg") or module.startswith("sqlite3")) and type(exc).__name__ in _UNAVAILABLE


def describe(exc: BaseException) -> str:
    """One line: the driver's error type and the first line of its message (never parameters)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).splitlines()[0][:200] if str(orig) else ""
    return f"{type(orig).__name__}: {text}"


class StoreHealth:
    """Available or not, since when, and why; logs each change of state once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.available = True
        self.error: str | None = None
        self.since = clock()
        self.failures = 0
        """Failures seen during the current outage."""

    def ok(self) -> None:
        if self.available:  # the common case: no lock, no work
            return
        with self._lock:
            if self.available:
                return
            seconds = self._clock() - self.since
            failures = self.failures
            self.available, self.error, self.since, self.failures = True, None, self._clock(), 0
        log.warning("the store is back after %.1f s (%d failed store calls meanwhile)", seconds, failures)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.error = describe(exc)
            if not self.available:
                return
            self.available, self.since = False, self._clock()
        # A server serves on meanwhile (cached tokens and endpoint config), spools its prediction log
        # rows and answers feedback 503; this line says it once, the failures after it are counted.
        log.error("the store is unavailable (%s); carrying on degraded until it is back", self.error)

    def snapshot(self) -> dict[str, Any]:
        """What readiness shows: `store` is "ok" or "unavailable" (with the error and for how long)."""
        with self._lock:
            if self.available:
                return {"store": "ok"}
            return {
                "store": "unavailable",
                "store_error": self.error,
                "store_unavailable_s": round(self._clock() - self.since, 1),
            }

    def watch(self, engine: Engine) -> None:
        """Let the engine report: a connection-level error marks the store unavailable; a new
        connection (after an outage the pool makes fresh ones) marks it available."""

        def on_error(context: Any) -> None:
            exc = context.sqlalchemy_exception or context.original_exception
            if context.is_disconnect or is_unavailable(exc):
                self.failed(exc)

        def on_connect(_dbapi_connection: Any, _record: Any) -> None:
            self.ok()

        event.listen(engine, "handle_error", on_error)
        event.listen(engine.pool, "connect", on_connect)


class StoreUnavailable(NotReady):
    """The store cannot answer now: 503 with `Retry-After`, so that clients send it again (feedback
    must never turn "cannot confirm" into "unknown")."""

    def __init__(self, message: str = "the store is unavailable; retry shortly", retry_after: int = 2) -> None:
        super().__init__(message, retry_after_s=retry_after)
        # The API's error handler sends these headers (driftgate/api/errors.py).
        self.headers = {"Retry-After": str(retry_after)}
