"""Slow-model isolation (issue 19, item 4): four endpoints stuck in model calls that never return, one
healthy endpoint.

Each of four endpoints (timeout_ms 300) gets hung calls until every call slot of its own is held and it
sheds (503); four client threads keep sending hanging requests to them while the healthy endpoint gets
sequential 1-row predicts. Every healthy answer must be 200 (no 504, no shed); its p50/p99 latency and
error count are recorded as figures, with no threshold on them (the server runs in-process on loopback:
the load threads share its interpreter, and the machine is shared). The hung model and the server are
tests/api/test_model_isolation.py's (`Blocking`, `stuck_server`).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest

from driftgate.registry.registry import register
from driftgate.store import Store
from tests.api.test_model_isolation import ENTERED, HANG, _python, _row, stuck_server, until  # noqa: F401
from tests.conftest import Artifacts, LiveServer

pytestmark = pytest.mark.slow

SLOW = [f"slow{i}" for i in range(4)]
HEALTHY = {"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}


def test_hung_endpoints_leave_a_healthy_one_alone(
    stuck_server: LiveServer,  # noqa: F811
    artifacts: Artifacts,
    figures: dict[str, Any],
    full: bool,
) -> None:
    store: Store = stuck_server.app.state.services.store
    register(store, _python("blocking", b"tests.api.test_model_isolation:Blocking", artifacts))
    with httpx.Client(base_url=stuck_server.url, timeout=60) as http:
        r = http.post(
            "/v1/models/clf/versions",
            data={"format": "sklearn", "target": "y"},
            files={"file": ("m.skops", artifacts.skops), "reference": ("ref.csv", artifacts.reference_csv)},
        )
        assert r.status_code == 201, r.text
        for name in SLOW:
            assert http.put(f"/v1/endpoints/{name}", json={"model": "blocking", "version": 1, "timeout_ms": 300})
        assert http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1, "timeout_ms": 5000}).is_success
        assert http.post("/v1/endpoints/clf/predict", json=HEALTHY).status_code == 200  # loaded before timing

        # Every slow endpoint hangs until all its slots are held and it sheds.
        for name in SLOW:
            statuses: list[int] = []
            while not statuses or statuses[-1] == 504:
                assert len(statuses) < 10, statuses
                statuses.append(http.post(f"/v1/endpoints/{name}/predict", json=_row(HANG)).status_code)
            assert statuses[-1] == 503, statuses
        until(lambda: len(ENTERED) >= 3 * len(SLOW))

    slow_answers: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def keep_hanging(name: str) -> None:
        with httpx.Client(base_url=stuck_server.url, timeout=60) as client:
            while not stop.is_set():
                status = client.post(f"/v1/endpoints/{name}/predict", json=_row(HANG)).status_code
                with lock:
                    slow_answers[status] += 1

    threads = [threading.Thread(target=keep_hanging, args=(name,), daemon=True) for name in SLOW]
    for t in threads:
        t.start()
    n = 1000 if full else 200
    latencies: list[float] = []
    healthy: collections.Counter[int] = collections.Counter()
    try:
        with httpx.Client(base_url=stuck_server.url, timeout=60) as http:
            for _ in range(n):
                started = time.perf_counter()
                answer = http.post("/v1/endpoints/clf/predict", json=HEALTHY)
                latencies.append(time.perf_counter() - started)
                healthy[answer.status_code] += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    ms = np.array(latencies) * 1000
    figures.update(
        {
            "hung_endpoints": len(SLOW),
            "hung_calls": len(ENTERED),
            "healthy_requests": n,
            "healthy_statuses": dict(healthy),
            "healthy_errors": n - healthy[200],
            "healthy_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "healthy_p99_ms": round(float(np.percentile(ms, 99)), 1),
            "hung_endpoint_answers_meanwhile": dict(slow_answers),
        }
    )
    assert healthy == {200: n}, dict(healthy)
    assert set(slow_answers) <= {503}, dict(slow_answers)
