"""Does a slow shadow change the primary's latency? (issue #6: "a slow or failing shadow never changes
the primary's answers or latency measurably").

    .venv/bin/python benchmarks/rollouts/shadow_isolation.py [--rate 100] [--seconds 15] [--rounds 3]

Two `driftgate serve` processes, each on its own SQLite store and pinned to core 0 (`taskset`, so
a shadow process they start shares that core): **process** (the default: shadow copies scored in a
child process at SCHED_IDLE priority) and **thread** (`--shadow-in-process`: in threads of the
server, as before). Both serve the serving benchmark's model (benchmarks/serving/model.py). The
candidate is `slow_shadow:BusyModel`: the same model after 50 ms of pure-Python CPU per call (it
holds the GIL; the worst neighbour). Load: `benchmarks/serving/fixed_rate.py` (open loop, latency
from each request's scheduled send) at `--rate` 1-row requests/s on core 1.

Each round measures, per server, the load **without** a rollout and **with** the shadow running
(started through the API before, rolled back after), in an order reversed every round. Ratios are
taken within a round (with / without) and the median over rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "serving"))
sys.path.insert(0, str(HERE.parent / "monitoring"))
sys.path.insert(0, str(HERE))  # slow_shadow, registered by import path
from model import FEATURES, TARGET, build_pipeline, make_data, request_rows  # noqa: E402
from p99_during_drift import fixed_rate, log, pinned, ready  # noqa: E402

DRIFTGATE = str(Path(sys.executable).parent / "driftgate")
ENDPOINT = "clf"  # fixed_rate() posts to this endpoint
VARIANTS = {"process": [], "thread": ["--shadow-in-process"]}


def prepare(data_dir: Path, csv: Path) -> None:
    """v1: the champion (skops); v2: the busy candidate (format python)."""
    import skops.io as sio

    from driftgate.registry.formats import python_artifact
    from driftgate.registry.registry import Registration, register
    from driftgate.store import Store

    ref = make_data(5000, seed=7)
    ref.to_csv(csv, index=False)
    model = build_pipeline().fit(ref[FEATURES], ref[TARGET])
    store = Store.open(data_dir)
    register(store, Registration("clf", sio.dumps(model), "sklearn", csv.read_bytes(), csv.name, TARGET))
    busy = python_artifact("slow_shadow:BusyModel")
    register(store, Registration("clf", busy, "python", csv.read_bytes(), csv.name, TARGET))
    store.endpoints.put(ENDPOINT, {"model": "clf", "version": 1}, actor="bench", reason="benchmark")
    store.close()


def serve(data_dir: Path, port: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    cmd = [DRIFTGATE, "serve", "--data-dir", str(data_dir), "--port", str(port), "--monitor-interval", "0", *extra]
    return ready(subprocess.Popen([*pinned(0), *cmd], env=env), port)


def shadow(url: str, on: bool) -> None:
    path = f"{url}/v1/endpoints/{ENDPOINT}/rollouts"
    if on:
        httpx.post(path, json={"strategy": "shadow", "version": 2}).raise_for_status()
        time.sleep(3)  # the shadow process starts and loads the candidate
    else:
        httpx.post(f"{path}/current/rollback", json={"reason": "benchmark"}).raise_for_status()


def shadow_rows(url: str) -> dict:
    cur = httpx.get(f"{url}/v1/endpoints/{ENDPOINT}/rollouts/current").json()
    return cur.get("versions", {}).get("candidate", {})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100, help="1-row predict requests per second")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=18740)
    ap.add_argument("--json", type=Path, help="write the raw results here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="driftgate-shadow-") as tmp:
        tmpdir = Path(tmp)
        urls, procs = {}, {}
        for i, (variant, extra) in enumerate(VARIANTS.items()):
            prepare(tmpdir / variant, tmpdir / f"{variant}.csv")
            urls[variant] = f"http://127.0.0.1:{a.port + i}"
            procs[variant] = serve(tmpdir / variant, a.port + i, extra)
        body = tmpdir / "body.json"
        body.write_text(json.dumps({"instances": request_rows(str(tmpdir / "process.csv"), 1)}))
        raw: dict = {"rounds": [], "args": {k: str(v) for k, v in vars(a).items()}}
        try:
            for url in urls.values():
                fixed_rate(url, body, a.rate, 3)  # warm-up
            plan = [(v, c) for v in VARIANTS for c in ("without", "with")]
            for rnd in range(a.rounds):
                result: dict = {}
                for v, cond in plan if rnd % 2 == 0 else plan[::-1]:
                    if cond == "with":
                        shadow(urls[v], True)
                    res = fixed_rate(urls[v], body, a.rate, a.seconds)
                    if cond == "with":
                        res["shadow"] = {k: shadow_rows(urls[v]).get(k) for k in ("rows", "errors", "latency_p99_ms")}
                        shadow(urls[v], False)
                    result[f"{v}/{cond}"] = res
                    log(f"round {rnd} {v} {cond:<7} {json.dumps(res)}")
                for v in VARIANTS:
                    for p in ("p50", "p99"):
                        result[f"{v}/{p}_ratio"] = result[f"{v}/with"][f"{p}_ms"] / result[f"{v}/without"][f"{p}_ms"]
                raw["rounds"].append(result)
                if a.json:
                    a.json.write_text(json.dumps(raw, indent=1))
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(timeout=60)
    for v in VARIANTS:
        for p in ("p50", "p99"):
            raw[f"{v}/median_{p}_ratio"] = statistics.median(r[f"{v}/{p}_ratio"] for r in raw["rounds"])
    print(markdown(raw))
    if a.json:
        a.json.write_text(json.dumps(raw, indent=1))


def markdown(raw: dict) -> str:
    lines = [
        "| round | shadow scored in | shadow | p50 ms | p99 ms | max ms | completed | errors | "
        "shadow rows in the last analysis |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(raw["rounds"]):
        for v in VARIANTS:
            for cond in ("without", "with"):
                x = r[f"{v}/{cond}"]
                scored = x.get("shadow", {}).get("rows", "-")
                lines.append(
                    f"| {i} | {v} | {cond} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['max_ms']:.1f} | "
                    f"{x['completed']} | {x['errors_status'] + x['errors_socket']} | {scored} |"
                )
    lines += ["", "| shadow scored in | p99 ratio with/without per round | median p99 ratio | median p50 ratio |"]
    lines += ["|---|---|---|---|"]
    for v in VARIANTS:
        ratios = ", ".join(f"{r[f'{v}/p99_ratio']:.2f}" for r in raw["rounds"])
        p99, p50 = raw[f"{v}/median_p99_ratio"], raw[f"{v}/median_p50_ratio"]
        lines.append(f"| {v} | {ratios} | **{p99:.2f}** | {p50:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
