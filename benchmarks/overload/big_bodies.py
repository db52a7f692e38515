"""Liveness while big JSON bodies are parsed (issue 19, item 6).

    .venv/bin/python benchmarks/overload/big_bodies.py [--mb 60] [--concurrent 3] [--max-rows N]

Starts `driftgate serve`'s app in a child process, sends `--concurrent` native predict requests of
about `--mb` MB each at once, and meanwhile asks `GET /v2/health/live` every 20 ms (one client,
sequential). Prints each big request's status and time and the liveness latencies (max, p99, count).
`--max-rows` raises `max_rows_per_request` (and `log_max_queued_rows`) so the big requests are scored
rather than refused by the row bound after parsing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.overload.common import free_port, prepare, records_body, serve, stop


def run(
    mb: float = 60,
    concurrent: int = 3,
    max_rows: int = 0,
    cores: str | None = None,
    probe: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The scenario (the benchmark and tests/reliability/test_oversize_bodies.py): its figures as a
    dict. `probe(url)`, if given, runs against the same server afterwards; its dict goes under "probe"."""
    rows = int(mb * 1e6 / 46)  # ~46 bytes a row
    body = records_body(rows)
    settings: dict[str, object] = {"max_body_bytes": 256 * 1024 * 1024, "monitor_interval": 0}
    if max_rows:
        settings |= {"max_rows_per_request": max_rows, "log_max_queued_rows": 4 * max_rows}
    probed: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(data)
        port = free_port()
        proc = serve(data, port, settings, cores)
        url = f"http://127.0.0.1:{port}"
        try:
            results: list[tuple[int, float]] = []
            live: list[float] = []
            done = threading.Event()

            def big() -> None:
                t0 = time.perf_counter()
                r = httpx.post(
                    f"{url}/v1/endpoints/clf/predict",
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=600,
                )
                results.append((r.status_code, time.perf_counter() - t0))

            def poll() -> None:
                with httpx.Client(base_url=url, timeout=600) as c:
                    while not done.is_set():
                        t0 = time.perf_counter()
                        c.get("/v2/health/live").raise_for_status()
                        live.append(time.perf_counter() - t0)
                        time.sleep(0.02)

            poller = threading.Thread(target=poll)
            poller.start()
            threads = [threading.Thread(target=big) for _ in range(concurrent)]
            t0 = time.perf_counter()
            try:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            finally:
                done.set()
                poller.join()
            wall = time.perf_counter() - t0
            if probe is not None:
                probed = probe(url)
        finally:
            stop(proc)
    lat = np.array(live)
    out: dict[str, Any] = {
        "body_mb": round(len(body) / 1e6, 1),
        "rows": rows,
        "requests": [{"status": s, "seconds": round(t, 2)} for s, t in results],
        "wall_s": round(wall, 2),
        "live_max_s": round(float(lat.max()), 3),
        "live_p99_s": round(float(np.quantile(lat, 0.99)), 3),
        "live_count": len(live),
    }
    if probe is not None:
        out["probe"] = probed
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=60)
    ap.add_argument("--concurrent", type=int, default=3)
    ap.add_argument("--max-rows", type=int, default=0)
    ap.add_argument("--cores", default=None, help="taskset cores for the server, e.g. 0")
    args = ap.parse_args()
    print(json.dumps(run(args.mb, args.concurrent, args.max_rows, args.cores)))


if __name__ == "__main__":
    main()
