"""gRPC against REST V2 on one driftgate server: the same model, endpoint, rows and concurrency.

    .venv/bin/python benchmarks/serving/grpc_vs_rest.py            # 3 alternating rounds of 8 s runs (~5 min)
    .venv/bin/python benchmarks/serving/grpc_vs_rest.py --quick    # 1 round of 3 s runs (a smoke test)

One `driftgate serve --grpc-port` (default settings, prediction log on) pinned to core 0 serves the
serving benchmark's model (benchmarks/serving/model.py: 18 numeric + 2 categorical features, a
scikit-learn pipeline). A load process pinned to core 1 keeps `--conns` requests in flight for each
run, with prebuilt bodies, and records every request's latency:

- `rest_json`: `POST /v2/models/bench/infer`, JSON tensors (what tritonclient.http sends with
  binary_data=False), over `--conns` keep-alive connections (aiohttp);
- `rest_binary`: the same with Triton's binary tensor extension (tritonclient.http's default);
- `grpc_raw`: `ModelInfer` with raw_input_contents (what tritonclient.grpc sends), one HTTP/2 channel
  (grpc.aio) carrying `--conns` concurrent calls, as a gRPC client does;
- `grpc_typed`: `ModelInfer` with typed contents (fp64_contents, bytes_contents).

Each round runs every (protocol, rows) pair once, in an order reversed every round; the table gives
the median over rounds. Results go to benchmarks/serving/grpc_vs_rest.json and the `grpc` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = ROOT / "benchmarks" / ".data" / "grpc_vs_rest"
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "grpc_vs_rest.json"
BIN = Path(sys.executable).parent
SERVER_CORE, CLIENT_CORE = "0", "1"
ENDPOINT = "bench"
PROTOCOLS = ("rest_json", "rest_binary", "grpc_raw", "grpc_typed")
ROW_COUNTS = (1, 100)
METHOD = "/inference.GRPCInferenceService/ModelInfer"

sys.path.insert(0, str(HERE))
import model as bench_model  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- bodies -------------------------------------------------------------------------------------


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in bench_model.FEATURES}


def rest_json_body(rows: list[dict[str, Any]]) -> bytes:
    import orjson

    inputs = [
        {"name": name, "shape": [len(values)], "datatype": "FP64" if name in bench_model.NUMERIC else "BYTES",
         "data": values}
        for name, values in _columns(rows).items()
    ]  # fmt: skip
    return orjson.dumps({"inputs": inputs})


def _raw(name: str, values: list[Any]) -> bytes:
    import numpy as np

    if name in bench_model.NUMERIC:
        return np.asarray(values, dtype="<f8").tobytes()
    return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)


def rest_binary_body(rows: list[dict[str, Any]]) -> tuple[bytes, int]:
    import orjson

    inputs, parts = [], []
    for name, values in _columns(rows).items():
        raw = _raw(name, values)
        datatype = "FP64" if name in bench_model.NUMERIC else "BYTES"
        inputs.append({"name": name, "shape": [len(values)], "datatype": datatype,
                       "parameters": {"binary_data_size": len(raw)}})  # fmt: skip
        parts.append(raw)
    header = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
    return header + b"".join(parts), len(header)


def grpc_body(rows: list[dict[str, Any]], raw: bool) -> bytes:
    """A serialised ModelInferRequest (driftgate's own messages: the wire format is the protocol's)."""
    from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=ENDPOINT)
    for name, values in _columns(rows).items():
        numeric = name in bench_model.NUMERIC
        tensor = request.inputs.add(name=name, datatype="FP64" if numeric else "BYTES", shape=[len(values)])
        if raw:
            request.raw_input_contents.append(_raw(name, values))
        elif numeric:
            tensor.contents.fp64_contents.extend(values)
        else:
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
    return request.SerializeToString()


def prepare() -> dict[str, Path]:
    import skops.io as sio

    WORK.mkdir(parents=True, exist_ok=True)
    csv = WORK / "ref.csv"
    bench_model.make_data().to_csv(csv, index=False)
    sio.dump(bench_model.train(str(csv)), WORK / "model.skops")
    paths = {"csv": csv}
    for n in ROW_COUNTS:
        rows = bench_model.request_rows(str(csv), n)
        (WORK / f"rest_json_{n}.bin").write_bytes(rest_json_body(rows))
        body, header = rest_binary_body(rows)
        (WORK / f"rest_binary_{n}.bin").write_bytes(body)
        (WORK / f"rest_binary_{n}.len").write_text(str(header))
        (WORK / f"grpc_raw_{n}.bin").write_bytes(grpc_body(rows, raw=True))
        (WORK / f"grpc_typed_{n}.bin").write_bytes(grpc_body(rows, raw=False))
    return paths


# ---- the load process -----------------------------------------------------------------------------


async def _load(protocol: str, target: str, body: bytes, header_len: int | None, conns: int, seconds: float,
                warmup: float) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    if protocol.startswith("grpc"):
        import grpc

        channel = grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
        call = channel.unary_unary(METHOD)  # bytes in, bytes out: no client-side protobuf work

        async def one() -> bool:
            try:
                await call(body, timeout=30)
                return True
            except grpc.RpcError:
                return False

        closer: Any = channel.close
    else:
        import aiohttp

        headers = {"Content-Type": "application/json" if header_len is None else "application/octet-stream"}
        if header_len is not None:
            headers["Inference-Header-Content-Length"] = str(header_len)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns))

        async def one() -> bool:
            async with session.post(target, data=body, headers=headers) as response:
                await response.read()
                return response.status == 200

        closer = session.close

    async def worker() -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            ok = await one()
            t1 = time.perf_counter()
            if t0 >= measure_from:
                if ok:
                    latencies.append(t1 - t0)
                else:
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(conns)))
    await closer()
    latencies.sort()
    n = len(latencies)
    return {
        "rps": round(n / seconds, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "requests": n,
        "errors": errors,
    }


def run_load(protocol: str, rows: int, ports: tuple[int, int], conns: int, seconds: float) -> dict[str, Any]:
    """One run in a child process pinned to the client core."""
    http_port, grpc_port = ports
    target = f"127.0.0.1:{grpc_port}" if protocol.startswith("grpc") else (
        f"http://127.0.0.1:{http_port}/v2/models/{ENDPOINT}/infer")  # fmt: skip
    args = ["taskset", "-c", CLIENT_CORE, sys.executable, __file__, "--load", protocol, "--target", target,
            "--rows", str(rows), "--conns", str(conns), "--seconds", str(seconds)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_main(args: argparse.Namespace) -> None:
    body = (WORK / f"{args.load}_{args.rows}.bin").read_bytes()
    length = WORK / f"{args.load}_{args.rows}.len"
    header_len = int(length.read_text()) if args.load == "rest_binary" else None
    result = asyncio.run(_load(args.load, args.target, body, header_len, args.conns, args.seconds, args.warmup))
    print(json.dumps(result))


# ---- the server -----------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(paths: dict[str, Path]) -> tuple[subprocess.Popen[bytes], tuple[int, int]]:
    data_dir = WORK / "driftgate"
    shutil.rmtree(data_dir, ignore_errors=True)
    cli = str(BIN / "driftgate")
    data = ["--data-dir", str(data_dir)]
    subprocess.run([cli, "models", "register", "bench-model", str(WORK / "model.skops"), "--format", "sklearn",
                    "--reference", str(paths["csv"]), "--target", bench_model.TARGET, *data],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([cli, "deploy", ENDPOINT, "--model", "bench-model", "--version", "1", *data], check=True,
                   capture_output=True)  # fmt: skip
    ports = (_free_port(), _free_port())
    server = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, cli, "serve", "--port", str(ports[0]), "--grpc-port", str(ports[1]),
         "--monitor-interval", "0", *data],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/models/{ENDPOINT}/ready", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("driftgate serve did not start") from None
            time.sleep(0.2)
    return server, ports


def check_answers(ports: tuple[int, int], csv: Path) -> None:
    """Every protocol's answer equals the model's (so the runs measure working requests)."""
    import grpc
    import numpy as np
    import orjson
    import pandas as pd

    from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb

    n = max(ROW_COUNTS)
    pipe = bench_model.train(str(csv))  # deterministic: the same fit as the served one
    expected = pipe.predict_proba(pd.DataFrame(bench_model.request_rows(str(csv), n)))
    url = f"http://127.0.0.1:{ports[0]}/v2/models/{ENDPOINT}/infer"
    request = urllib.request.Request(url, data=(WORK / f"rest_json_{n}.bin").read_bytes(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        outputs = {o["name"]: o for o in orjson.loads(response.read())["outputs"]}
    np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], expected.shape), expected, rtol=1e-9)
    with grpc.insecure_channel(f"127.0.0.1:{ports[1]}") as channel:
        call = channel.unary_unary(METHOD)
        for form in ("grpc_raw", "grpc_typed"):
            answer = pb.ModelInferResponse.FromString(call((WORK / f"{form}_{n}.bin").read_bytes(), timeout=30))
            names = [o.name for o in answer.outputs]
            i = names.index("predict_proba")
            proba = (np.frombuffer(answer.raw_output_contents[i], "<f8") if answer.raw_output_contents
                     else np.asarray(answer.outputs[i].contents.fp64_contents))  # fmt: skip
            np.testing.assert_allclose(proba.reshape(expected.shape), expected, rtol=1e-9)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# ---- report ---------------------------------------------------------------------------------------


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "## gRPC against REST (Open Inference Protocol)",
        "",
        f"`{doc['command']}` on {doc['machine']}, {doc['date']}: one `driftgate serve --grpc-port` (prediction "
        f"log on) pinned to core {SERVER_CORE}, the load from one process pinned to core {CLIENT_CORE} keeping "
        f"{doc['conns']} requests in flight, {doc['seconds']:g} s per run after {doc['warmup']:g} s of warm-up, "
        f"median of {doc['rounds']} alternating rounds. Same model (benchmarks/serving/model.py, 20 features), "
        "same endpoint, same rows. REST: aiohttp over keep-alive connections; gRPC: grpc.aio, one channel.",
        "",
        "| protocol | rows/request | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for n in ROW_COUNTS:
        for protocol in PROTOCOLS:
            r = doc["results"][f"{protocol}_{n}"]
            lines.append(
                f"| {protocol} | {n} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
            )
    lines += ["", *doc["notes"]]
    return "\n".join(lines)


def write_doc(md: str, section: str = "grpc") -> None:
    text = DOC.read_text()
    block = f"<!-- {section}:start -->\n{md}\n<!-- {section}:end -->"
    new, n = re.subn(rf"<!-- {section}:start -->\n.*?\n<!-- {section}:end -->", lambda _: block, text, flags=re.S)
    DOC.write_text(new if n == 1 else text.rstrip("\n") + "\n\n" + block + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--no-doc", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    # The load process (internal).
    parser.add_argument("--load", choices=PROTOCOLS)
    parser.add_argument("--target")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    if args.load:
        load_main(args)
        return
    rounds, seconds = (1, 3.0) if args.quick else (3, 8.0)
    load_before = os.getloadavg()[1]
    paths = prepare()
    server, ports = start_server(paths)
    raw: dict[str, list[dict[str, Any]]] = {}
    try:
        check_answers(ports, paths["csv"])
        pairs = [(p, n) for n in ROW_COUNTS for p in PROTOCOLS]
        for i in range(rounds):
            for protocol, n in pairs if i % 2 == 0 else pairs[::-1]:
                result = run_load(protocol, n, ports, args.conns, seconds)
                raw.setdefault(f"{protocol}_{n}", []).append(result)
                log(f"round {i + 1}: {protocol} x {n} rows: {result}")
    finally:
        stop_server(server)
    results = {
        key: {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
        }
        for key, runs in raw.items()
    }
    # Other work on the machine moves these numbers more than the protocol does: say how busy it was.
    load = (round(load_before, 1), round(os.getloadavg()[1], 1))
    notes = [
        f"- Machine load (5-minute load average) before and after: {load[0]}, {load[1]} on {os.cpu_count()} cores."
    ]
    for n in ROW_COUNTS:
        rest, grpc_ = results[f"rest_binary_{n}"], results[f"grpc_raw_{n}"]
        notes.append(
            f"- {n} row(s): gRPC raw at {grpc_['rps'] / rest['rps']:.2f}x the req/s of REST with binary tensors "
            f"({results[f'rest_json_{n}']['rps']:,.0f} req/s with JSON tensors)."
        )
    doc = {
        "command": "benchmarks/serving/grpc_vs_rest.py" + (" --quick" if args.quick else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "conns": args.conns,
        "seconds": seconds,
        "warmup": args.warmup,
        "rounds": rounds,
        "results": results,
        "raw": raw,
        "notes": notes,
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    md = markdown(doc)
    print(md)
    if not args.no_doc:
        write_doc(md)


if __name__ == "__main__":
    main()
