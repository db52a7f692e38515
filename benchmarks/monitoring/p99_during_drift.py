"""Predict latency while a drift report or a monitor run over 1,000,000 logged rows runs (SPEC: monitoring
must not slow serving by more than 20 %).

    .venv/bin/python benchmarks/monitoring/p99_during_drift.py [--job drift|monitor] [--rows 1000000]
        [--seconds 20] [--rounds 3]

One `driftgate serve` (one process, SQLite in a temp dir, pinned to core 0 with `taskset` when
there are two cores or more, `--monitor-interval 0` so that no periodic run lands in a window)
serves the serving benchmark's model (benchmarks/serving/model.py: 18 numeric + 2 categorical
features, ColumnTransformer + LogisticRegression) registered with 5,000 reference rows. `--rows`
rows of traffic (x00 shifted by +0.5 sd, so there is drift to find; an outcome event on every 50th
row, so a monitor run has events to count) go straight into the store with
`store.predictions.write_rows` before the server starts, as benchmarks/logging does. Load:
`benchmarks/serving/fixed_rate.py` (open loop, latency from each request's scheduled send time) at
`--rate` 1-row requests/s on core 1. Each round measures both conditions for `--seconds` each, in an
order reversed every round:

- **without**: only the load;
- **during**: the job repeated back to back from another thread for the whole window (the first
  one, which also scores the reference, runs before any round): `--job drift` is
  `GET /v1/endpoints/clf/drift?last=1000000`, `--job monitor` is
  `POST /v1/endpoints/clf/monitor {"last": 1000000}` (drift report, window metrics, event rates,
  concept drift; points and report stored, alert rules judged).

The ratio is taken within each round (during / without), then the median over rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "serving"))
from model import FEATURES, TARGET, build_pipeline, make_data, request_rows  # noqa: E402

DRIFTGATE = str(Path(sys.executable).parent / "driftgate")
ENDPOINT = "clf"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(data_dir: Path, csv: Path, rows: int) -> None:
    """Register and deploy the model, then write `rows` logged predictions (and an outcome event on
    every 50th) into the store."""
    import skops.io as sio

    from driftgate.core.events import OutcomeEvent
    from driftgate.core.ids import new_ids
    from driftgate.core.rows import LogBatch, encode
    from driftgate.registry.registry import Registration, register
    from driftgate.store import Store
    from driftgate.store.events import Target

    ref = make_data(5000, seed=7)
    ref.to_csv(csv, index=False)
    model = build_pipeline().fit(ref[FEATURES], ref[TARGET])
    store = Store.open(data_dir)
    register(store, Registration("clf", sio.dumps(model), "sklearn", csv.read_bytes(), csv.name, TARGET))
    store.endpoints.put(ENDPOINT, {"model": "clf", "version": 1}, actor="bench", reason="benchmark")
    started = time.perf_counter()
    chunk = 50_000
    base = time.time() - 3600
    for i, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        frame = make_data(n, seed=100 + i)[FEATURES].copy()
        frame["x00"] += 0.5
        proba = model.predict_proba(frame)
        preds = model.classes_[proba.argmax(axis=1)].tolist()
        ids = new_ids(n)
        batch = LogBatch(ENDPOINT, "clf", 1, "primary", base + i, ids, frame, preds, proba, 3.0, "ok")
        encoded = encode(batch)
        store.predictions.write_rows(encoded)
        target = Target(base + i, "clf", 1)
        events = [OutcomeEvent(pid, "user_retried", base + i + 1) for pid in ids[::50]]
        store.events.add(ENDPOINT, events, dict.fromkeys(ids[::50], target))
    log(f"wrote {rows:,} log rows in {time.perf_counter() - started:.0f} s ({store.predictions.count(ENDPOINT):,})")
    store.close()


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def serve(data_dir: Path, port: int, variant: str) -> subprocess.Popen:
    """`driftgate serve`; variant "thread" runs every drift report and monitor run in the serving
    process (what driftgate did before monitoring/worker.py), "child" is the shipped default."""
    args = ["serve", "--data-dir", str(data_dir), "--port", str(port), "--monitor-interval", "0"]
    if variant == "child":
        cmd = [DRIFTGATE, *args]
    else:
        code = (
            "import driftgate.monitoring.worker as w; w.IN_PROCESS_ROWS = 10**9\n"
            f"from driftgate.cli import app; app({args!r})"
        )
        cmd = [sys.executable, "-c", code]
    return ready(subprocess.Popen([*pinned(0), *cmd]), port)


def ready(proc: subprocess.Popen, port: int, timeout: float = 120) -> subprocess.Popen:
    """`proc` once its server on `port` answers readiness; killed if it does not within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def fixed_rate(url: str, body: Path, rate: float, seconds: float) -> dict:
    out = subprocess.run(
        [
            *pinned(1),
            sys.executable,
            str(HERE.parent / "serving" / "fixed_rate.py"),
            f"{url}/v1/endpoints/{ENDPOINT}/predict",
            str(body),
            str(rate),
            str(seconds),
            "--warmup",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_job(client: httpx.Client, url: str, job: str, last: int) -> httpx.Response:
    """One drift report (GET .../drift?last=N) or one monitor run (POST .../monitor {"last": N})."""
    if job == "monitor":
        return client.post(f"{url}/v1/endpoints/{ENDPOINT}/monitor", json={"last": last})
    return client.get(f"{url}/v1/endpoints/{ENDPOINT}/drift", params={"last": last})


class JobLoop:
    """The job back to back until stopped; keeps each run's start, end, status and window rows."""

    def __init__(self, url: str, job: str, last: int) -> None:
        self.url, self.job, self.last = url, job, last
        self.runs: list[tuple[float, float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=1200) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                answer = run_job(client, self.url, self.job, self.last)
                rows = answer.json().get("window", {}).get("rows", 0) if answer.status_code == 200 else 0
                self.runs.append((t0, time.monotonic(), answer.status_code, rows))

    def __enter__(self) -> JobLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) RSS of a process and its children in MB."""
    total = peak = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):  # children started by any thread
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        total += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        peak += int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
    return total, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", choices=("drift", "monitor"), default="drift", help="what runs during the load")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100, help="1-row predict requests per second")
    ap.add_argument("--port", type=int, default=18720)
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--variants", default="child,thread", help="child (shipped) and/or thread (job in-process)")
    a = ap.parse_args()
    last = min(a.rows, 1_000_000)
    with tempfile.TemporaryDirectory(prefix="driftgate-bench-") as tmp:
        tmpdir = Path(tmp)
        data_dir, csv = tmpdir / "data", tmpdir / "reference.csv"
        prepare(data_dir, csv, a.rows)
        body = tmpdir / "body.json"
        body.write_text(json.dumps({"instances": request_rows(str(csv), 1)}))
        variants = a.variants.split(",")
        procs = {v: serve(data_dir, a.port + i, v) for i, v in enumerate(variants)}
        urls = {v: f"http://127.0.0.1:{a.port + i}" for i, v in enumerate(variants)}
        raw: dict = {"rounds": [], "args": {k: str(v) for k, v in vars(a).items()}, "first_report_s": {}, "job": a.job}
        try:
            for v in variants:
                t0 = time.monotonic()
                with httpx.Client(timeout=1200) as client:
                    first = run_job(client, urls[v], a.job, last)
                first.raise_for_status()
                report = first.json()
                took = time.monotonic() - t0
                drifted = [f["name"] for f in report["features"] if f["drifted"]]
                log(f"{v}: first {a.job} run {report['window']['rows']:,} rows, {took:.1f} s, drifted {drifted}")
                if a.job == "monitor":
                    raw["event_rate"] = report["breakdown"]["event_rate"]
                raw["first_report_s"][v] = took
                raw["drifted"] = drifted
                fixed_rate(urls[v], body, a.rate, 3)  # warm-up
            plan = [(v, c) for v in variants for c in ("without", "during")]
            for rnd in range(a.rounds):
                result: dict = {}
                for v, cond in plan if rnd % 2 == 0 else plan[::-1]:
                    url = urls[v]
                    if cond == "without":
                        res = fixed_rate(url, body, a.rate, a.seconds)
                    else:
                        with JobLoop(url, a.job, last) as loop:
                            time.sleep(0.5)  # a report is in flight before the load starts
                            w0 = time.monotonic()
                            res = fixed_rate(url, body, a.rate, a.seconds)
                            w1 = time.monotonic()
                        runs = loop.runs
                        busy = sum(max(0.0, min(e, w1) - max(s, w0)) for s, e, _, _ in runs)
                        res["drift_runs"] = len(runs)
                        res["drift_run_s"] = [round(e - s, 2) for s, e, _, _ in runs]
                        res["drift_status"] = sorted({st for _, _, st, _ in runs})
                        res["drift_rows"] = max((r for *_, r in runs), default=0)
                        res["drift_busy_fraction"] = round(busy / (w1 - w0), 3)
                    res["server_rss_mb"], res["server_peak_rss_mb"] = rss_mb(procs[v].pid)
                    result[f"{v}/{cond}"] = res
                    log(f"round {rnd} {v} {cond:<7} {json.dumps(res)}")
                for v in variants:
                    result[f"{v}/p99_ratio"] = result[f"{v}/during"]["p99_ms"] / result[f"{v}/without"]["p99_ms"]
                    result[f"{v}/p50_ratio"] = result[f"{v}/during"]["p50_ms"] / result[f"{v}/without"]["p50_ms"]
                raw["rounds"].append(result)
                if a.json:
                    a.json.write_text(json.dumps(raw, indent=1))
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(timeout=60)
    raw["variants"] = variants
    for v in variants:
        raw[f"{v}/median_p99_ratio"] = statistics.median(r[f"{v}/p99_ratio"] for r in raw["rounds"])
        raw[f"{v}/median_p50_ratio"] = statistics.median(r[f"{v}/p50_ratio"] for r in raw["rounds"])
    print(markdown(raw))
    if a.json:
        a.json.write_text(json.dumps(raw, indent=1))


def markdown(raw: dict) -> str:
    job = raw.get("job", "drift")
    lines = [
        f"| round | {job} runs in | condition | p50 ms | p99 ms | max ms | completed | errors | "
        f"{job} runs overlapping the window (s each) | {job} busy | server RSS MB now (peak), children included |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(raw["rounds"]):
        for v in raw["variants"]:
            for cond in ("without", "during"):
                x = r[f"{v}/{cond}"]
                runs = ", ".join(f"{s:.1f}" for s in x.get("drift_run_s", [])) or "-"
                busy = f"{x['drift_busy_fraction']:.0%}" if "drift_busy_fraction" in x else "-"
                lines.append(
                    f"| {i} | {v} | {cond} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['max_ms']:.1f} | "
                    f"{x['completed']} | {x['errors_status'] + x['errors_socket']} | {runs} | {busy} | "
                    f"{x['server_rss_mb']:.0f} ({x['server_peak_rss_mb']:.0f}) |"
                )
    lines += ["", f"| {job} runs in | p99 ratio during/without per round | median | p50 ratio median | target |"]
    lines += ["|---|---|---|---|---|"]
    for v in raw["variants"]:
        ratios = ", ".join(f"{r[f'{v}/p99_ratio']:.2f}" for r in raw["rounds"])
        med = raw[f"{v}/median_p99_ratio"]
        lines.append(
            f"| {v} | {ratios} | **{med:.2f}** | {raw[f'{v}/median_p50_ratio']:.2f} | <= 1.20: "
            f"{'met' if med <= 1.2 else '**not met**'} |"
        )
    first = ", ".join(f"{v} {s:.1f} s" for v, s in raw["first_report_s"].items())
    lines += ["", f"First {job} run (cold: also scores the reference): {first}; drifted: {raw['drifted']}"]
    if "event_rate" in raw:
        lines.append(f"event_rate of the window: {raw['event_rate']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
