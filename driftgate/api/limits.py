"""Request limits.

- Body size, as a pure ASGI middleware: 413 before a large body is read into memory.
- Prediction requests (native, MLflow, V2), in their routes:
  `decode_request` decodes a body larger than `big_body_bytes` in a worker thread, one body at a time,
  so the event loop keeps answering (liveness, small requests) while it parses, and refuses more rows
  than `max_rows_per_request` (413) before anything else is done with them;
  `admitted` holds room in the prediction log for every row before the request is scored: a request
  the log cannot take now gets 503 with `Retry-After`, so no id is handed out for a row the log would
  drop (SPEC 5). Refusals are counted in `driftgate_shed_requests` / `driftgate_shed_rows`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftgate.errors import DriftgateError, Overloaded, PayloadTooLarge

if TYPE_CHECKING:
    from driftgate.api.services import Services

T = TypeVar("T")
# Seconds a client is told to wait when the prediction log is full: about one of its write intervals.
LOG_FULL_RETRY_AFTER_S = 1
# One thread for big bodies: decoding holds the GIL anyway (two at once would not finish sooner), and
# one at a time keeps the event loop's waits for the GIL to one decode's steps and bounds the memory
# of parsed bodies to one.
_big_decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftgate-decode")


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    def _limit(self, scope: Scope) -> int:
        path: str = scope.get("path", "")
        is_upload = path.startswith("/v1/models/") and path.endswith("/versions")
        return self.max_upload if is_upload else self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _reject(send, limit)
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send, limit)


async def _reject(send: Send, limit: int) -> None:
    body = orjson.dumps({"error": f"request body larger than the limit of {limit} bytes"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ---- prediction requests --------------------------------------------------------------------------


def _shed(svc: Services, endpoint: str, reason: str, rows: int) -> None:
    svc.metrics.shed_requests.labels(endpoint, reason).inc()
    svc.metrics.shed_rows.labels(endpoint, reason).inc(rows)


def _decode_bounded(decode: Callable[[], T], rows_of: Callable[[T], int], limit: int) -> tuple[T | None, int]:
    """`decode()` and its row count; None instead of a request over `limit` rows, so that its values
    are freed here (a worker thread for big bodies) and not on the event loop."""
    out = decode()
    n = rows_of(out)
    return (None, n) if n > limit else (out, n)


def _in_worker(decode: Callable[[], T], rows_of: Callable[[T], int], limit: int) -> tuple[T | None, int] | Exception:
    """`_decode_bounded` in the decode thread. A refusal comes back as an exception without traceback
    or context, whose frames would keep the parsed body alive until the event loop let it go."""
    try:
        return _decode_bounded(decode, rows_of, limit)
    except DriftgateError as exc:
        exc.__context__ = None
        return exc.with_traceback(None)


async def decode_request(
    svc: Services, endpoint: str, body_size: int, decode: Callable[[], T], rows_of: Callable[[T], int]
) -> T:
    """Run a protocol decoder (off the event loop for a big body) and check the request's rows."""
    limit = svc.settings.max_rows_per_request
    if body_size > svc.settings.big_body_bytes:
        got = await asyncio.get_running_loop().run_in_executor(_big_decoder, _in_worker, decode, rows_of, limit)
        if isinstance(got, Exception):
            raise got
        out, n = got
    else:
        out, n = _decode_bounded(decode, rows_of, limit)
    if out is None:
        _shed(svc, endpoint, "max_rows_per_request", n)
        raise PayloadTooLarge(
            f"the request has {n} rows; this server takes at most max_rows_per_request={limit} rows per "
            "request: split it (driftgate batch score streams files in chunks)",
            field="max_rows_per_request",
            rows=n,
            max_rows_per_request=limit,
        )
    return out


@contextlib.contextmanager
def admitted(svc: Services, endpoint: str, rows: int) -> Iterator[None]:
    """Hold room in the prediction log for `rows` rows while the request is scored (see the module
    docstring); 413 when the log could never take that many at once, 503 + Retry-After when not now."""
    log = svc.recorder
    capacity = log.capacity_rows
    if rows > capacity:
        _shed(svc, endpoint, "log_max_queued_rows", rows)
        raise PayloadTooLarge(
            f"the request has {rows} rows; the prediction log holds at most log_max_queued_rows={int(capacity)} "
            "rows: split the request",
            field="log_max_queued_rows",
            rows=rows,
            log_max_queued_rows=int(capacity),
        )
    admission = log.admit(rows)
    if admission is None:
        _shed(svc, endpoint, "log_full", rows)
        raise Overloaded(
            f"the prediction log cannot take {rows} more rows now (it is writing a backlog); nothing was "
            f"scored: retry after {LOG_FULL_RETRY_AFTER_S} s",
            retry_after=LOG_FULL_RETRY_AFTER_S,
            reason="log_full",
        )
    with admission:
        yield
