"""A PostgreSQL outage under a real `driftgate serve`: shared by tests/api/test_store_outage.py and the
reliability suite (tests/reliability/test_store_outage.py).

`serve_on(cluster, ...)` starts the server on a cluster of the test's own (tests/pg_cluster.py);
`outage(...)` stops the cluster under predict load, checks what the server does while it is down and
after it is back, and returns the figures (answers per phase, acknowledged rows lost, log lines,
recovery time).
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from driftgate.api.auth import REFRESH_SECONDS
from driftgate.client import Client
from driftgate.store import Store
from tests.conftest import Artifacts, free_port
from tests.pg_cluster import PgCluster
from tests.test_cli import DRIFTGATE

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    headers: dict[str, str]
    admin: str | None

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


def ready(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=5)
    except httpx.HTTPError:
        return None


def wait(condition: Callable[[], object], what: str, timeout: float = 60.0) -> float:
    """Poll `condition` until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def store_state(url: str) -> str | None:
    r = ready(url)
    return None if r is None else r.json().get("store")


@contextmanager
def serve_on(cluster: PgCluster, tmp_path: Path, tokens: bool) -> Iterator[Served]:
    """`driftgate serve` on the cluster, its output in a file; with or without API tokens."""
    predict_token = admin_token = None
    if tokens:
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
        wait(lambda: proc.poll() is not None or ((r := ready(url)) is not None and r.status_code == 200), "ready")
        assert proc.poll() is None, log.read_text()
        yield Served(url, proc, log, headers, admin_token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Load:
    """`clients` closed-loop predict clients in threads; answers and acknowledged ids per phase."""

    def __init__(self, served: Served, clients: int) -> None:
        self.phase = "before"
        self.answers: collections.Counter[str] = collections.Counter()  # "phase:status"
        self.ids: dict[str, list[str]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(served,), daemon=True) for _ in range(clients)]

    def _send(self, served: Served) -> None:
        with httpx.Client(base_url=served.url, headers=served.headers, timeout=30) as http:
            while not self._stop.is_set():
                phase = self.phase
                try:
                    r = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW, ROW]})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.answers[f"{phase}:{type(exc).__name__}"] += 1
                    continue
                with self._lock:
                    self.answers[f"{phase}:{r.status_code}"] += 1
                    if r.status_code == 200:
                        self.ids[phase].extend(r.json()["ids"])

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def outage(served: Served, cluster: PgCluster, artifacts: Artifacts, clients: int = 0) -> dict[str, Any]:
    """Stop the cluster while predictions come (the test's own, plus `clients` load threads), check the
    degraded behaviour, start it again, check recovery and that nothing acknowledged was lost."""
    with Client(served.url, token=served.admin) as admin:
        admin.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        admin.deploy("clf", "clf", 1)
    http = httpx.Client(base_url=served.url, headers=served.headers, timeout=30)
    before = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW, ROW]})
    assert before.status_code == 200, before.text
    stored_id = before.json()["ids"][0]
    answer = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": stored_id, "label": 1}]})
    assert answer.json() == {"accepted": 1, "unknown_ids": []}
    ready_before = ready(served.url)
    assert ready_before is not None and ready_before.status_code == 200, ready_before
    assert ready_before.json()["store"] == "ok", ready_before.json()

    with _Load(served, clients) as load:
        if clients:  # the load clients have been answered before the store goes away
            wait(lambda: len(load.ids["before"]) >= 2 * clients, "load before the outage")
        lines_before = len(served.log_lines())
        load.phase = "outage"
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
            return store_state(served.url) == "unavailable" and time.monotonic() - outage_started > 3 * REFRESH_SECONDS

        wait(noticed, "readiness to report the store unavailable")
        for _ in range(50):
            serve_once()
        assert set(statuses) == {200}, statuses
        served_in_outage = statuses[200]

        during = ready(served.url)
        assert during is not None
        # Still serving, so still ready; the body says what is degraded.
        assert during.status_code == 200
        body = during.json()
        assert body["ready"] is True and body["status"] == "degraded" and body["store"] == "unavailable", body

        # The store cannot confirm ids: 503 with Retry-After, never a false unknown_ids.
        feedback_503 = 0
        for pid in (stored_id, outage_ids[0]):
            answer = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": pid, "label": 0}]})
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["retry-after"]) >= 1
            assert "unknown_ids" not in answer.json()
            feedback_503 += 1

        outage_lines = served.log_lines()[lines_before:]
        tracebacks = sum("Traceback" in line for line in outage_lines)
        # A handful of lines (each failing component says so once), however many requests came.
        assert len(outage_lines) <= 20, "\n".join(outage_lines[:80])
        assert tracebacks == 0, "\n".join(outage_lines[:80])

        load.phase = "recovery"
        cluster.start()
        restarted = time.monotonic()
        # Back to "ok" once the store answers and the prediction log has written what it parked.
        recovery = wait(lambda: (r := ready(served.url)) is not None and r.json()["status"] == "ok", "recovery", 60)
        load.phase = "after"
        after_ready = ready(served.url)
        assert after_ready is not None and after_ready.status_code == 200, after_ready
        assert after_ready.json() == {"ready": True, "status": "ok", "store": "ok", "prediction_log": "ok"}

        # Every prediction made during the outage reaches the store; feedback for them is accepted.
        labels = [{"id": pid, "label": 1} for pid in outage_ids]
        answer = http.post("/v1/endpoints/clf/feedback", json={"labels": labels})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": len(outage_ids), "unknown_ids": []}
        stored_after = time.monotonic() - restarted
        if clients:
            wait(lambda: len(load.ids["after"]) >= 2 * clients, "load after the recovery")
    after = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW]})
    assert after.status_code == 200
    # A label for the last acknowledged row: answered only once the log has written it (and what came before).
    last = after.json()["ids"][0]
    assert http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": last, "label": 1}]}).status_code == 200
    http.close()

    acked = {phase: list(ids) for phase, ids in load.ids.items()}
    acked["outage"] = acked.get("outage", []) + outage_ids
    lost: dict[str, int] = {}
    store = Store.open(db=cluster.url, migrate=False)
    try:
        assert store.predictions.known_ids("clf", outage_ids) == set(outage_ids)
        for phase, ids in acked.items():
            known: set[str] = set()
            for i in range(0, len(ids), 5000):
                known |= store.predictions.known_ids("clf", ids[i : i + 5000])
            lost[phase] = len(set(ids) - known)
    finally:
        store.close()
    return {
        "load_clients": clients,
        "answers": dict(sorted(load.answers.items())),
        "outage_predict_requests_200": served_in_outage,
        "acked_rows": {phase: len(ids) for phase, ids in acked.items()},
        "acked_rows_lost": lost,
        "feedback_503_in_outage": feedback_503,
        "readiness_in_outage": body,
        "outage_s": round(restarted - outage_started, 1),
        "log_lines_in_outage": len(outage_lines),
        "tracebacks_in_outage": tracebacks,
        "readiness_ok_after_restart_s": round(recovery, 2),
        "outage_rows_confirmed_after_restart_s": round(stored_after, 2),
    }
