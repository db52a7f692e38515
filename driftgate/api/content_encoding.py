"""Compressed request bodies (`Content-Encoding: gzip` or `deflate`), decoded as they arrive.

`BodyLimit` (api/limits.py) wraps the ASGI `receive` of a request that declares a coding with
`Inflating`: the routes read the decoded bytes as if they had been sent plain (the big-body decoder
process included), and the decoded size counts against the same limit as a plain body. A body is
inflated at most `PIECE_BYTES` at a time and counted piece by piece, so a zip bomb is refused (413)
after at most limit + one piece of output, never inflated whole. Between pieces the event loop runs
other requests. A coding other than gzip, deflate or identity is refused by `BodyLimit` with 415.
"""

from __future__ import annotations

import asyncio
import zlib

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

# Output per inflate call: small enough that the loop is not held (~1 ms), large enough to be cheap.
PIECE_BYTES = 1024 * 1024
SUPPORTED = ("gzip", "x-gzip", "deflate")


class Unsupported(Exception):
    """The request's Content-Encoding is not one this server decodes (415)."""


def coding_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The one content coding to undo ("gzip" or "deflate"), None for a plain body; `Unsupported`
    for any other coding, or for more than one (no client sends a chain)."""
    codings = [
        c.strip().lower()
        for name, value in headers
        if name == b"content-encoding"
        for c in value.decode("latin-1").split(",")
    ]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in SUPPORTED:
        raise Unsupported(
            f"Content-Encoding {', '.join(codings)!r} is not supported: send the body plain, gzip or deflate"
        )
    return "gzip" if codings[0] == "x-gzip" else codings[0]


def _decompressor(coding: str, head: bytes) -> zlib._Decompress:
    if coding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # HTTP's "deflate" is the zlib format (RFC 9110), but some clients send raw deflate: the zlib
    # header (method 8, check bits a multiple of 31) tells them apart.
    zlib_header = len(head) >= 2 and head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)


class Inflating:
    """An ASGI `receive` that yields the decoded body of `receive`'s encoded one.

    Errors are `HTTPException`s (400, or 413 past `limit` decoded bytes): FastAPI passes those on
    when they come out of a body it parses itself, where any other exception becomes a bare 400."""

    def __init__(self, receive: Receive, coding: str, limit: int) -> None:
        self.receive = receive
        self.coding = coding
        self.limit = limit
        self._d: zlib._Decompress | None = None
        self._tail = b""  # encoded bytes received, not yet inflated
        self._full = False  # the last inflate filled its piece: more output may be waiting in zlib
        self._ended = False  # the client sent its last chunk
        self._started = False  # any encoded byte arrived
        self._out = 0

    async def __call__(self) -> Message:
        while True:
            if self._d is not None and (self._tail or self._full):
                piece = self._inflate(self._d)
                if piece:
                    await asyncio.sleep(0)  # let other requests run between pieces
                    return {"type": "http.request", "body": piece, "more_body": True}
                continue
            if self._ended:
                if self._d is None and self._tail:  # a one-byte body
                    self._d = _decompressor(self.coding, self._tail)
                    continue
                self._finish()
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await self.receive()
            if message["type"] != "http.request":
                return message  # http.disconnect
            self._tail += message.get("body", b"")
            self._started = self._started or bool(self._tail)
            self._ended = not message.get("more_body", False)
            if self._d is None and len(self._tail) >= 2:  # deflate's header check reads two bytes
                self._d = _decompressor(self.coding, self._tail)

    def _inflate(self, d: zlib._Decompress) -> bytes:
        if d.eof:  # the stream ended with encoded bytes left (moved to _tail below)
            self._full = False
            if self.coding != "gzip":
                raise HTTPException(400, f"request body: data after the end of the {self.coding} stream")
            self._d = _decompressor(self.coding, b"")  # another gzip member follows (RFC 1952 allows it)
            return b""
        try:
            piece = d.decompress(self._tail, PIECE_BYTES)
        except zlib.error as exc:
            raise HTTPException(400, f"request body is not valid {self.coding} data ({exc})") from None
        self._tail = d.unused_data + d.unconsumed_tail if d.eof else d.unconsumed_tail
        self._full = len(piece) == PIECE_BYTES and not d.eof
        self._out += len(piece)
        if self._out > self.limit:
            raise HTTPException(413, f"request body larger than the limit of {self.limit} bytes once decoded")
        return piece

    def _finish(self) -> None:
        if not self._started:
            return  # no body at all: nothing to decode
        if self._d is None or not self._d.eof:
            raise HTTPException(400, f"request body: the {self.coding} stream is truncated")
