"""Open-loop fixed-rate HTTP/1.1 load (wrk2 is not in Debian): one request every 1/rate s.

Latency is taken from each request's *scheduled* send time (as wrk2 does), so a stalled server
is not hidden by the client waiting for it (no coordinated omission). Requests go out on a pool
of keep-alive connections; a request whose turn comes while all are busy opens another (up to
--max-conns, else it waits and its wait counts in its latency).

Usage: python fixed_rate.py URL BODY_FILE RATE SECONDS [--ctype T] [--trace FILE]  -> one JSON line on stdout

`--trace FILE` writes each measured request's scheduled send time (s from the first) and latency (ms),
one "t latency" line each: stalls that recur at a fixed period point at the server's periodic work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


class Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.closed = True
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        i = head.find(b"content-length:")
        length = 0
        if i >= 0:
            j = head.find(b"\r\n", i)
            length = int(head[i + 15 : j if j >= 0 else len(head)])
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buf[: end + 4 + length]
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(status)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("body")
    ap.add_argument("rate", type=float)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--ctype", default="application/json")
    ap.add_argument("--max-conns", type=int, default=64)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--trace", default=None, help="write 't_s latency_ms' per measured request here")
    a = ap.parse_args()
    url = urlsplit(a.url)
    with open(a.body, "rb") as fh:
        body = fh.read()
    request = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {a.ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    idle: list[Conn] = []
    n_conns = 0
    lat: list[float] = []
    trace: list[tuple[float, float]] = []
    errors = {"status": 0, "socket": 0}
    late = 0  # sends that left more than 1 ms after their scheduled time (client saturation check)

    async def connect() -> Conn:
        nonlocal n_conns
        n_conns += 1
        _, proto = await loop.create_connection(Conn, url.hostname, url.port)
        return proto

    async def one(scheduled: float, record: bool) -> None:
        nonlocal late, n_conns
        conn = None
        for attempt in range(2):
            # Servers close keep-alive connections idle for a few seconds (uvicorn: 5 s); skip
            # those, and retry once on a fresh connection if one closes under our request.
            while idle and idle[-1].closed:
                idle.pop()
                n_conns -= 1
            conn = idle.pop() if idle else None
            if conn is None:
                while n_conns >= a.max_conns and not idle:
                    await asyncio.sleep(0.0005)
                conn = idle.pop() if idle else await connect()
            if attempt == 0 and time.perf_counter() - scheduled > 0.001 and record:
                late += 1
            try:
                conn.waiter = loop.create_future()
                conn.transport.write(request)
                status = await conn.waiter
                break
            except Exception:
                n_conns -= 1
                if attempt == 1:
                    if record:
                        errors["socket"] += 1
                    return
        done = time.perf_counter()
        idle.append(conn)
        if record:
            lat.append(done - scheduled)
            trace.append((scheduled, done - scheduled))
            if not 200 <= status < 300:
                errors["status"] += 1

    for _ in range(8):
        idle.append(await connect())
    interval = 1.0 / a.rate
    start = time.perf_counter() + 0.05
    total = int((a.warmup + a.seconds) * a.rate)
    n_warm = int(a.warmup * a.rate)
    tasks = set()
    for i in range(total):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0.0002:
            await asyncio.sleep(delay - 0.0001)
        while time.perf_counter() < scheduled:
            pass
        t = loop.create_task(one(scheduled, i >= n_warm))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    if a.trace:
        first = min((t for t, _ in trace), default=0.0)
        with open(a.trace, "w") as fh:
            fh.writelines(f"{t - first:.4f} {d * 1000:.3f}\n" for t, d in sorted(trace))
    lat.sort()
    n = len(lat)

    def pct(p: float) -> float:
        return round(lat[min(n - 1, int(p / 100 * n))] * 1000, 3) if n else float("nan")

    print(
        json.dumps(
            {
                "rate": a.rate,
                "seconds": a.seconds,
                "sent": total,  # warm-up included
                "completed": n,
                "p50_ms": pct(50),
                "p90_ms": pct(90),
                "p99_ms": pct(99),
                "max_ms": round(lat[-1] * 1000, 3) if n else None,
                "errors_status": errors["status"],
                "errors_socket": errors["socket"],
                "late_sends": late,
                "connections": n_conns,
            }
        )
    )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
