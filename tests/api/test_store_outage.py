"""Serving through a store outage: a real `driftgate serve` on a PostgreSQL cluster of the test's own,
which the test stops and starts again.

While the store is down predictions keep answering 200 (tokens and endpoint config cached), readiness
says what is degraded, feedback answers 503 with Retry-After (never a false `unknown_ids`), and the
server log stays bounded (each repeated error logged once, then counted). When the store is back,
readiness recovers, the predictions made during the outage are stored and feedback works.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from driftgate.api.auth import REFRESH_SECONDS
from driftgate.client import Client
from driftgate.store import Store
from tests.conftest import Artifacts, free_port
from tests.pg_cluster import PgCluster, cluster_available
from tests.test_cli import DRIFTGATE

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not cluster_available(), reason="needs initdb/pg_ctl to run a PostgreSQL cluster of our own"),
]


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    c = PgCluster()
    try:
        c.start()
        yield c
    finally:
        c.close()


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    headers: dict[str, str]
    admin: str | None

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


def _ready(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=5)
    except httpx.HTTPError:
        return None


def _wait(condition, what: str, timeout: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    """Poll `condition` until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(params=[False, True], ids=["no-tokens", "tokens"])
def served(request: pytest.FixtureRequest, cluster: PgCluster, tmp_path: Path) -> Iterator[Served]:
    """`driftgate serve` on the cluster, its output in a file; with or without API tokens."""
    predict_token = admin_token = None
    if request.param:
        store = Store.open(db=cluster.url)
        predict_token, admin_token = store.tokens.create("predict", "app"), store.tokens.create("admin", "ops")
        store.close()
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*DRIFTGATE, "serve", "--port", str(port), "--db", cluster.url, "--data-dir", str(tmp_path / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {predict_token}"} if predict_token else {}
    try:
        _wait(lambda: proc.poll() is not None or ((r := _ready(url)) is not None and r.status_code == 200), "ready")
        assert proc.poll() is None, log.read_text()
        yield Served(url, proc, log, headers, admin_token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _store_state(url: str) -> str | None:
    r = _ready(url)
    return None if r is None else r.json().get("store")


def test_serving_continues_through_a_postgres_outage(served: Served, cluster: PgCluster, artifacts: Artifacts) -> None:
    with Client(served.url, token=served.admin) as admin:
        admin.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        admin.deploy("clf", "clf", 1)
    http = httpx.Client(base_url=served.url, headers=served.headers, timeout=30)
    before = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW, ROW]})
    assert before.status_code == 200, before.text
    stored_id = before.json()["ids"][0]
    answer = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": stored_id, "label": 1}]})
    assert answer.json() == {"accepted": 1, "unknown_ids": []}
    ready = _ready(served.url)
    assert ready is not None and ready.status_code == 200 and ready.json()["store"] == "ok", ready
    lines_before = len(served.log_lines())

    cluster.stop()
    outage_started = time.monotonic()
    statuses: dict[int, int] = {}
    outage_ids: list[str] = []

    def serve_once() -> None:
        r = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW, ROW]})
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code == 200:
            outage_ids.extend(r.json()["ids"])

    # Predictions keep coming until readiness has noticed the outage and the token cache has been
    # due for a refresh a few times (each refresh meets the stopped store).
    def noticed() -> bool:
        serve_once()
        return _store_state(served.url) == "unavailable" and time.monotonic() - outage_started > 3 * REFRESH_SECONDS

    _wait(noticed, "readiness to report the store unavailable")
    for _ in range(50):
        serve_once()
    assert set(statuses) == {200}, statuses
    served_in_outage = statuses[200]

    ready = _ready(served.url)
    assert ready is not None
    # Still serving, so still ready; the body says what is degraded.
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["status"] == "degraded" and body["store"] == "unavailable", body

    # The store cannot confirm ids: 503 with Retry-After, never a false unknown_ids.
    for pid in (stored_id, outage_ids[0]):
        answer = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": pid, "label": 0}]})
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) >= 1
        assert "unknown_ids" not in answer.json()

    outage_lines = served.log_lines()[lines_before:]
    tracebacks = sum("Traceback" in line for line in outage_lines)
    # A handful of lines (each failing component says so once), however many requests came.
    assert len(outage_lines) <= 20, "\n".join(outage_lines[:80])
    assert tracebacks == 0, "\n".join(outage_lines[:80])

    cluster.start()
    restarted = time.monotonic()
    # Back to "ok" once the store answers and the prediction log has written what it parked.
    recovery = _wait(lambda: (r := _ready(served.url)) is not None and r.json()["status"] == "ok", "recovery", 60)
    ready = _ready(served.url)
    assert ready is not None and ready.status_code == 200, ready
    assert ready.json() == {"ready": True, "status": "ok", "store": "ok", "prediction_log": "ok"}

    # Every prediction made during the outage reaches the store; feedback for them is accepted.
    labels = [{"id": pid, "label": 1} for pid in outage_ids]
    answer = http.post("/v1/endpoints/clf/feedback", json={"labels": labels})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": len(outage_ids), "unknown_ids": []}
    stored_after = time.monotonic() - restarted
    after = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW]})
    assert after.status_code == 200
    store = Store.open(db=cluster.url, migrate=False)
    try:
        assert store.predictions.known_ids("clf", outage_ids) == set(outage_ids)
    finally:
        store.close()
    http.close()
    print(
        f"\noutage: {served_in_outage} predict requests answered 200 ({len(outage_ids)} rows), "
        f"{len(outage_lines)} log lines ({tracebacks} tracebacks) over "
        f"{restarted - outage_started:.1f} s; readiness back {recovery:.2f} s after restart, "
        f"outage rows confirmed by feedback {stored_after:.2f} s after restart"
    )
