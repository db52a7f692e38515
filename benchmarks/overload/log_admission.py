"""Overload of the prediction log (issue 19, item 5): 10,000-row requests from several clients at once.

    .venv/bin/python -m benchmarks.overload.log_admission [--seconds 20] [--clients 8] [--rows 10000]
        [--big-rows 1200000] [--cores 0] [--log-max-queued-rows N]

Starts `driftgate serve`'s app (writer child on, default settings) in a child process. Each client
posts `--rows`-row native requests back to back for `--seconds`; a 503 is counted and retried after
its Retry-After. Then one `--big-rows` request (the 1.2M-row request of the issue, ~55 MB, under the
body limit) and, at the end, feedback (label 1) for every id that was acknowledged: every one must be
known. Prints acknowledged rows/s, the shed rate, the big request's answer, unknown ids, and the
server's dropped and shed counters.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.overload.common import free_port, prepare, records_body, serve, stop

JSON = {"content-type": "application/json"}


def counters(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.name in ("driftgate_log_dropped_rows_total", "driftgate_shed_rows_total", "driftgate_log_lost_rows"):
                key = s.name + (f"{{{s.labels['reason']}}}" if "reason" in s.labels else "")
                out[key] = out.get(key, 0.0) + s.value
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of one process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run(
    seconds: float = 20,
    clients: int = 8,
    rows: int = 10_000,
    big_rows: int = 1_200_000,
    cores: str | None = None,
    log_max_queued_rows: int | None = None,
) -> dict[str, Any]:
    """The scenario (the benchmark and tests/reliability/test_overload.py): its figures as a dict.
    `big_rows` 0 sends no big request."""
    body = records_body(rows)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(data)
        port = free_port()
        settings: dict[str, object] = {"monitor_interval": 0}
        if log_max_queued_rows is not None:
            settings["log_max_queued_rows"] = log_max_queued_rows
        proc = serve(data, port, settings, cores)
        url = f"http://127.0.0.1:{port}"
        acked: list[str] = []
        ok = shed = 0
        lock = threading.Lock()
        try:
            rss_before = rss_mb(proc.pid)  # with --cores, taskset exec()s python: the same pid
            deadline = time.monotonic() + seconds

            def client() -> None:
                nonlocal ok, shed
                with httpx.Client(base_url=url, timeout=300) as c:
                    while time.monotonic() < deadline:
                        r = c.post("/v1/endpoints/clf/predict", content=body, headers=JSON)
                        with lock:
                            if r.status_code == 200:
                                ok += 1
                                acked.extend(orjson.loads(r.content)["ids"])
                            elif r.status_code == 503:
                                shed += 1
                            else:
                                raise RuntimeError(f"{r.status_code}: {r.text[:200]}")
                        if r.status_code == 503:
                            time.sleep(float(r.headers["retry-after"]))

            t0 = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            big_answer: dict[str, Any] = {}
            if big_rows:
                big = httpx.post(
                    f"{url}/v1/endpoints/clf/predict", content=records_body(big_rows),
                    headers={"content-type": "application/json"}, timeout=600,
                )  # fmt: skip
                big_answer = {"status": big.status_code, "error": big.json().get("error", "")[:160]}
                if big.status_code == 200:
                    acked.extend(big.json()["ids"])
            unknown = 0
            with httpx.Client(base_url=url, timeout=600) as c:
                for start in range(0, len(acked), 10_000):
                    labels = [{"id": i, "label": 1} for i in acked[start : start + 10_000]]
                    while True:
                        r = c.post("/v1/endpoints/clf/feedback", content=orjson.dumps({"labels": labels}))
                        if r.status_code != 503:
                            break
                        time.sleep(float(r.headers.get("retry-after", 1)))
                    r.raise_for_status()
                    unknown += len(r.json()["unknown_ids"])
            server = counters(url)
            rss_after = rss_mb(proc.pid)
        finally:
            stop(proc)
    return {
        "clients": clients,
        "rows_per_request": rows,
        "log_max_queued_rows": log_max_queued_rows,
        "seconds": round(wall, 1),
        "acked_requests": ok,
        "shed_requests": shed,
        "shed_rate": round(shed / max(ok + shed, 1), 3),
        "acked_rows_per_s": round(ok * rows / wall),
        "big_request": big_answer,
        "acked_ids": len(acked),
        "unknown_ids_in_feedback": unknown,
        "server": server,
        "server_rss_mb": {"before": rss_before, "after": rss_after},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--big-rows", type=int, default=1_200_000)
    ap.add_argument("--cores", default=None, help="taskset cores for the server, e.g. 0")
    ap.add_argument("--log-max-queued-rows", type=int, default=None, help="the server's log_max_queued_rows")
    args = ap.parse_args()
    out = run(args.seconds, args.clients, args.rows, args.big_rows, args.cores, args.log_max_queued_rows)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
