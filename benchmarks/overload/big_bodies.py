"""Liveness while big JSON bodies are parsed (issue 19, item 6).

    .venv/bin/python -m benchmarks.overload.big_bodies [--mb 60] [--concurrent 3] [--max-rows N] [--busy N]
    .venv/bin/python -m benchmarks.overload.big_bodies --mb 4.5 --sequential 20 [--big-body-bytes N]

Starts `driftgate serve`'s app in a child process, sends `--concurrent` native predict requests of
about `--mb` MB each at once, and meanwhile asks `GET /v2/health/live` every 20 ms (one client,
sequential). Prints each big request's status and time and the liveness latencies (max, p99, count).
`--protocol grpc` sends them as gRPC ModelInfer calls (typed contents) instead. `--max-rows` raises
`max_rows_per_request` (and `log_max_queued_rows`) so the big requests are scored
rather than refused by the row bound after parsing. `--busy N` runs N busy loops (Python processes at
normal priority) while the requests are sent, to load the machine; `load_avg_1m` is read at the start.
For comparison, liveness is first asked for `--floor-s` seconds with no big request in flight (the busy
loops running): `floor_live_max_s` is what the machine's load alone costs a probe. `--sequential N`
measures instead what a normal big body (1-5 MB) costs end to end, one request at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.overload.common import free_port, prepare, records_body, serve, stop

JSON = {"content-type": "application/json"}


def run(
    mb: float = 60,
    concurrent: int = 3,
    max_rows: int = 0,
    cores: str | None = None,
    probe: Callable[[str], dict[str, Any]] | None = None,
    busy: int = 0,
    floor_s: float = 0.0,
    protocol: str = "rest",
) -> dict[str, Any]:
    """The scenario (the benchmark and tests/reliability/test_oversize_bodies.py): its figures as a
    dict. `probe(url)`, if given, runs against the same server afterwards; its dict goes under "probe"."""
    grpc = protocol == "grpc"
    rows = int(mb * 1e6 / (22 if grpc else 46))  # bytes a row
    body = grpc_body(rows) if grpc else records_body(rows)
    settings: dict[str, object] = {"max_body_bytes": 256 * 1024 * 1024, "monitor_interval": 0}
    if grpc:
        settings["grpc_port"] = free_port()
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
            results: list[tuple[int | str, float]] = []
            probes: list[tuple[float, float]] = []  # (sent at, seconds to answer)
            done = threading.Event()

            def big() -> None:
                t0 = time.perf_counter()
                if grpc:
                    status: int | str = grpc_infer(int(str(settings["grpc_port"])), body)
                else:
                    status = httpx.post(
                        f"{url}/v1/endpoints/clf/predict", content=body, headers=JSON, timeout=600
                    ).status_code
                results.append((status, time.perf_counter() - t0))

            def poll() -> None:
                with httpx.Client(base_url=url, timeout=600) as c:
                    while not done.is_set():
                        t0 = time.perf_counter()
                        c.get("/v2/health/live").raise_for_status()
                        probes.append((t0, time.perf_counter() - t0))
                        time.sleep(0.02)

            load = os.getloadavg()[0]
            loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
            poller = threading.Thread(target=poll)
            threads = [threading.Thread(target=big) for _ in range(concurrent)]
            try:
                poller.start()
                done.wait(floor_s)  # the floor: probes with no big request in flight
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            finally:
                done.set()
                poller.join()
                for loop in loops:
                    loop.kill()
                    loop.wait()
            wall = time.perf_counter() - t0
            floor = [seconds for sent, seconds in probes if sent < t0]
            live = [seconds for sent, seconds in probes if sent >= t0]
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
        "floor_live_max_s": round(max(floor), 3) if floor else None,
        "busy_loops": busy,
        "load_avg_1m": round(load, 2),
    }
    if probe is not None:
        out["probe"] = probed
    return out


def grpc_body(rows: int) -> bytes:
    """A ModelInferRequest for endpoint `clf` with `rows` rows in typed contents (~22 bytes a row)."""
    from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb

    rng = np.random.default_rng(0)
    request = pb.ModelInferRequest(model_name="clf")
    for name, values in (("x1", rng.normal(size=rows)), ("x2", rng.uniform(0, 10, rows))):
        request.inputs.add(name=name, datatype="FP64", shape=[rows]).contents.fp64_contents.extend(values.tolist())
    colours = rng.choice([b"red", b"green", b"blue"], rows).tolist()
    request.inputs.add(name="colour", datatype="BYTES", shape=[rows]).contents.bytes_contents.extend(colours)
    return bytes(request.SerializeToString())


def grpc_infer(port: int, body: bytes) -> str:
    """Send a serialized ModelInferRequest; the call's status code name."""
    import grpc

    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            call(body, timeout=600)
        except grpc.RpcError as exc:
            return str(exc.code().name)
        return "OK"


def sequential(mb: float, n: int, big_body_bytes: int | None = None) -> dict[str, Any]:
    """The cost of a normal big body: `n` native predict requests of ~`mb` MB one after another (scored:
    keep `mb` under ~4.6, the default `max_rows_per_request`), their median and fastest seconds.
    `big_body_bytes` moves the threshold above which a body is decoded in the decoder process."""
    body = records_body(int(mb * 1e6 / 46))
    settings: dict[str, object] = {"max_body_bytes": 256 * 1024 * 1024, "monitor_interval": 0}
    if big_body_bytes is not None:
        settings["big_body_bytes"] = big_body_bytes
    seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(data)
        port = free_port()
        proc = serve(data, port, settings)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
                for _ in range(n + 1):  # the first starts the decoder process: not counted
                    t0 = time.perf_counter()
                    c.post("/v1/endpoints/clf/predict", content=body, headers=JSON).raise_for_status()
                    seconds.append(time.perf_counter() - t0)
        finally:
            stop(proc)
    return {
        "body_mb": round(len(body) / 1e6, 2),
        "first_s": round(seconds[0], 3),
        "median_s": round(float(np.median(seconds[1:])), 3),
        "min_s": round(min(seconds[1:]), 3),
        "requests": n,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=60)
    ap.add_argument("--concurrent", type=int, default=3)
    ap.add_argument("--max-rows", type=int, default=0)
    ap.add_argument("--cores", default=None, help="taskset cores for the server, e.g. 0")
    ap.add_argument("--busy", type=int, default=0, help="busy loops on the machine while the requests run")
    ap.add_argument("--floor-s", type=float, default=5.0, help="seconds of probes before the big requests")
    ap.add_argument("--protocol", choices=["rest", "grpc"], default="rest", help="how the big requests are sent")
    ap.add_argument("--sequential", type=int, default=0, help="instead: this many --mb requests, one at a time")
    ap.add_argument("--big-body-bytes", type=int, default=None, help="the server's big_body_bytes (--sequential)")
    args = ap.parse_args()
    if args.sequential:
        print(json.dumps(sequential(args.mb, args.sequential, args.big_body_bytes)))
        return
    out = run(
        args.mb,
        args.concurrent,
        args.max_rows,
        args.cores,
        busy=args.busy,
        floor_s=args.floor_s,
        protocol=args.protocol,
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
