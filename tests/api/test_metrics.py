"""`/metrics` parses as Prometheus text and counts every request, with one process or several workers."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftgate.client import Client
from tests.conftest import Artifacts, free_port
from tests.test_cli import DRIFTGATE, _wait_ready

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}

SERVING_METRICS = {
    "driftgate_requests",
    "driftgate_rows",
    "driftgate_model_latency_seconds",
    "driftgate_model_batch_rows",
    "driftgate_model_call_seconds",
    "driftgate_model_queue_seconds",
    "driftgate_review_rows",
    "driftgate_log_dropped_rows",
    "driftgate_log_queue_rows",
    "driftgate_log_written_rows",
    "driftgate_log_lost_rows",
    "driftgate_log_spooled_rows",
    "driftgate_log_spool_backlog_files",
    "driftgate_log_store_up",
    "process_resident_memory_bytes",
    "process_cpu_seconds",
}


def scrape(url: str) -> dict[str, list]:
    """{family name: samples} from one scrape, on a fresh connection (so any worker may answer)."""
    answer = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(answer.text)}


def total(families: dict[str, list], sample_name: str, **labels: str) -> float:
    family = sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    return sum(
        s.value
        for s in families.get(family, [])
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_single_process_metrics_parse_and_count(deployed: Client, server) -> None:
    for _ in range(7):
        deployed.predict("clf", [ROW, ROW])
    families = scrape(server.url)
    assert set(families) >= SERVING_METRICS, SERVING_METRICS - set(families)
    assert total(families, "driftgate_requests_total") == 7
    assert total(families, "driftgate_requests_total", endpoint="clf", version="1", status="ok") == 7
    assert total(families, "driftgate_rows_total") == 14
    assert total(families, "driftgate_model_latency_seconds_count") == 7
    # One after another, each request is its own model call.
    assert total(families, "driftgate_model_batch_rows_count", endpoint="clf", role="primary") == 7
    assert total(families, "driftgate_model_batch_rows_sum", endpoint="clf", role="primary") == 14
    assert total(families, "driftgate_model_call_seconds_count", endpoint="clf", role="primary") == 7
    assert total(families, "driftgate_model_queue_seconds_count", endpoint="clf", role="primary") == 7
    assert total(families, "process_resident_memory_bytes") > 10_000_000
    # The recorder's counters, read at scrape time, catch up once the log is written.
    deadline = time.monotonic() + 10
    while total(scrape(server.url), "driftgate_log_written_rows_total") < 14:
        assert time.monotonic() < deadline, "log rows never reported as written"
        time.sleep(0.1)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A real `driftgate serve --workers 2` process; yields (url, process)."""
    port = free_port()
    proc = subprocess.Popen(
        [*DRIFTGATE, "serve", "--workers", "2", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def metrics_dir_of(proc: subprocess.Popen[str]) -> Path:
    # serve sets the variable after it starts, so read it from a worker (a child) instead.
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    for pid in children:
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return Path(entry.split(b"=", 1)[1].decode())
    raise AssertionError("no worker has PROMETHEUS_MULTIPROC_DIR")


@pytest.mark.slow
def test_two_workers_scrape_counts_every_request(
    two_workers: tuple[str, subprocess.Popen[str]], artifacts: Artifacts
) -> None:
    url, proc = two_workers
    metrics_dir = metrics_dir_of(proc)
    assert metrics_dir.is_dir()
    with Client(url) as c:
        c.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        c.deploy("clf", "clf", 1)

    def predict(_: int) -> int:
        # A fresh connection per request: the kernel hands connections to either worker.
        answer = httpx.post(
            f"{url}/v1/endpoints/clf/predict",
            json={"instances": [ROW]},
            headers={"Connection": "close"},
            timeout=30,
        )
        assert answer.status_code in (200, 404), answer.text  # 404: a worker not yet synced
        return answer.status_code

    ok = 0
    deadline = time.monotonic() + 30
    while True:  # until both workers serve the endpoint: 20 answers in a row
        streak = 0
        while streak < 20 and predict(0) == 200:
            streak += 1
            ok += 1
        if streak == 20:
            break
        assert time.monotonic() < deadline, "workers never both served the endpoint"
        time.sleep(0.2)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(predict, range(200)))
    assert codes == [200] * 200
    n = ok + 200
    # Both workers answered predictions (a worker creates its histogram file on its first one), so a
    # scrape that saw one worker only would count less than n.
    assert len(list(metrics_dir.glob("histogram_*.db"))) == 2

    pids: set[str] = set()
    for _ in range(12):
        families = scrape(url)
        assert total(families, "driftgate_requests_total") == n
        assert total(families, "driftgate_requests_total", endpoint="clf", version="1", status="ok") == n
        assert total(families, "driftgate_rows_total") == n
        assert total(families, "driftgate_model_latency_seconds_count") == n
        memory = {s.labels["pid"]: s.value for s in families["process_resident_memory_bytes"]}
        cpu = {s.labels["pid"]: s.value for s in families["process_cpu_seconds"]}
        assert len(memory) == 2 and all(v > 10_000_000 for v in memory.values()), memory
        assert set(cpu) == set(memory) and all(v > 0 for v in cpu.values()), cpu
        pids |= set(memory)
        # Labelled counters never incremented have no samples, and so no family, in multiprocess mode.
        unused = {"driftgate_review_rows", "driftgate_log_dropped_rows"}
        assert set(families) >= SERVING_METRICS - unused, SERVING_METRICS - unused - set(families)
    assert len(pids) == 2
    # Every logged row reaches the store and the merged counter (each worker mirrors its own).
    deadline = time.monotonic() + 15
    while total(scrape(url), "driftgate_log_written_rows_total") < n:
        assert time.monotonic() < deadline, "log rows never reported as written"
        time.sleep(0.2)
    assert total(scrape(url), "driftgate_log_store_up") == 1.0

    proc.terminate()
    proc.wait(timeout=60)
    assert not metrics_dir.exists(), "serve leaves its metrics directory behind"


def test_dead_workers_live_gauges_are_forgotten(tmp_path: Path) -> None:
    from driftgate.serving.metrics import forget_dead_workers

    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in (f"gauge_livesum_{dead.pid}.db", f"gauge_liveall_{dead.pid}.db", f"gauge_livesum_{os.getpid()}.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / f"counter_{dead.pid}.db").write_bytes(b"")
    assert forget_dead_workers(str(tmp_path)) == [dead.pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead.pid}.db", f"gauge_livesum_{os.getpid()}.db"]
    )
