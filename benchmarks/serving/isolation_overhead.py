"""What `isolation: "process"` costs against `"thread"`: request latency, worker start, worker memory.

    .venv/bin/python benchmarks/serving/isolation_overhead.py [--requests 300] [--rounds 3]

One `driftgate serve` (the benchmark model of model.py, skops) with two endpoints on the same version,
one per isolation mode. Requests are sequential (one connection, no load beyond the client), so the
figures are the added latency of one call, not throughput; the endpoints alternate every round so
background noise on a shared machine falls on both. The worker start is timed in this process
(`ProcessPool.start`: spawn, imports, loading the model) and the worker's RSS read from /proc.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import model as bench_model  # noqa: E402

from driftgate.registry.registry import Registration, register  # noqa: E402
from driftgate.serving.isolation import ProcessPool, Spawner, WorkerSpec  # noqa: E402
from driftgate.store import Store  # noqa: E402

MODES = ("thread", "process")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(work: Path) -> tuple[Path, dict[int, bytes], bytes]:
    import skops.io as sio

    csv = work / "ref.csv"
    bench_model.make_data().to_csv(csv, index=False)
    artifact = sio.dumps(bench_model.train(str(csv)))
    data_dir = work / "data"
    store = Store.open(data_dir)
    register(store, Registration("bench", artifact, "sklearn", csv.read_bytes(), "ref.csv", target="y"))
    for mode in MODES:
        store.endpoints.put(mode, {"model": "bench", "version": 1, "isolation": mode}, actor="bench")
    store.close()
    bodies = {n: json.dumps({"instances": bench_model.request_rows(str(csv), n)}).encode() for n in (1, 100)}
    return data_dir, bodies, artifact


def latencies(requests: int, rounds: int, url: str, bodies: dict[int, bytes]) -> dict[str, dict[str, float]]:
    samples: dict[tuple[str, int], list[float]] = {(m, n): [] for m in MODES for n in bodies}
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=60) as http:
        for r in range(rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]
            for mode in order:
                for n, body in bodies.items():
                    path = f"/v1/endpoints/{mode}/predict"
                    for _ in range(20):  # warm-up
                        assert http.post(path, content=body, headers=headers).status_code == 200
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        response = http.post(path, content=body, headers=headers)
                        samples[(mode, n)].append((time.perf_counter() - t0) * 1000)
                        assert response.status_code == 200, response.text
    out = {}
    for (mode, n), values in samples.items():
        values.sort()
        out[f"{mode}_{n}_row"] = {
            "p50_ms": round(statistics.median(values), 3),
            "p99_ms": round(values[int(len(values) * 0.99) - 1], 3),
            "n": len(values),
        }
    return out


def worker_start(artifact: bytes, times: int) -> dict[str, float]:
    spawner = Spawner()
    starts, rss = [], []
    try:
        for _ in range(times):
            pool = ProcessPool(WorkerSpec("bench", artifact, "skops", False, None), spawner, 1, hang_after_s=60)
            t0 = time.perf_counter()
            pool.start()
            starts.append(time.perf_counter() - t0)
            rss.append(rss_mb(pool.pids()[0]))
            pool.close(now=True)
    finally:
        spawner.close()
    return {"start_s_median": round(statistics.median(starts), 2), "start_s_all": [round(s, 2) for s in starts],
            "worker_rss_mb": round(statistics.median(rss), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, bodies, artifact = prepare(Path(tmp))
        port = httpx_free_port()
        cli = str(Path(sys.executable).parent / "driftgate")
        proc = subprocess.Popen([cli, "serve", "--data-dir", str(data_dir), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.2)
            result: dict[str, object] = latencies(args.requests, args.rounds, url, bodies)  # type: ignore[assignment]
            result["server_rss_mb"] = round(rss_mb(proc.pid), 1)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        result.update(worker_start(artifact, 3))
    print(json.dumps(result, indent=1))


def httpx_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
