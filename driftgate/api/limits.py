"""Request limits.

- Body size, as a pure ASGI middleware: 413 before a large body is read into memory. A body sent
  with `Content-Encoding: gzip` or `deflate` is decoded there as it arrives (`content_encoding`):
  its decoded size counts against the same limit (a zip bomb gets 413 early); other codings get 415.
- Prediction requests (native, MLflow, V2), in their routes:
  `read_body` reads a body, and `decode_request` decodes one larger than `big_body_bytes` in a
  helper process (`body_decoder`),
  so the event loop keeps answering (liveness, small requests) while it parses, and refuses more rows
  than `max_rows_per_request` (413) before anything else is done with them;
  `admitted` holds room in the prediction log for every row before the request is scored: a request
  the log cannot take now gets 503 with `Retry-After`, so no id is handed out for a row the log would
  drop (SPEC 5). Refusals are counted in `driftgate_shed_requests` / `driftgate_shed_rows`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftgate.api.body_decoder import decode_bounded, decode_in_child
from driftgate.api.content_encoding import Inflating, Unsupported, coding_of
from driftgate.api.errors import error_response
from driftgate.errors import Overloaded, PayloadTooLarge

if TYPE_CHECKING:
    from driftgate.api.services import Services

T = TypeVar("T")
# Seconds a client is told to wait when the prediction log is full: about one of its write intervals.
LOG_FULL_RETRY_AFTER_S = 1


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
        try:
            coding = coding_of(scope.get("headers", []))
        except Unsupported as exc:
            await _reply(scope, send, 415, str(exc))
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

        app_receive: Receive = counting_receive
        if coding is not None:
            # The app sees a plain body: no coding, and no length (the decoded one is not known yet).
            drop = (b"content-encoding", b"content-length")
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in drop]}
            app_receive = Inflating(counting_receive, coding, limit)
        try:
            await self.app(scope, app_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send, limit)


async def _reply(scope: Scope, send: Send, status: int, message: str) -> None:
    """An error answered here, before the app: in the app's error shape (MLflow's on its routes)."""
    response = error_response(Request(scope), {"error": message}, status)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


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


async def read_body(request: Request, big_body_bytes: int) -> bytes:
    """`request.body()`, joined in a worker thread when it is bigger than `big_body_bytes`: starlette
    joins the chunks on the event loop, and copying 60 MB there held liveness up for 0.2-0.5 s on a
    loaded machine. Cached on the request as starlette's `body()` caches it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
    body = await asyncio.to_thread(b"".join, chunks) if size > big_body_bytes else b"".join(chunks)
    request._body = body
    return body


async def decode_request(svc: Services, endpoint: str, body_size: int, decode: partial[T]) -> T:
    """Run a protocol decoder (in the decoder process for a big body) and check the request's rows.
    `decode` is a partial of a module-level function with picklable arguments (it may be sent there)."""
    limit = svc.settings.max_rows_per_request
    if body_size > svc.settings.big_body_bytes:
        out, n = await decode_in_child(decode, limit)
    else:
        out, n = decode_bounded(decode, limit)
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
