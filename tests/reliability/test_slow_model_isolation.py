"""Slow-model isolation (issue 19, item 4): four endpoints stuck in model calls that never return, one
healthy endpoint.

Each of four endpoints (timeout_ms 300) gets hung calls until every call slot of its own is held and it
sheds (503); four client threads keep sending hanging requests to them while the healthy endpoint gets
sequential 1-row predicts. Every healthy answer must be 200 (no 504, no shed); its p50/p99 latency and
error count are recorded as figures, with no threshold on them (the server runs in-process on loopback:
the load threads share its interpreter, and the machine is shared). The hung model and the server are
tests/slow_model.py's (`Blocking`, `stuck_site`, as the `stuck_server` fixture).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import LiveServer
from tests.helpers import row, until
from tests.slow_model import ENTERED, HANG, HEALTHY, SLOW

pytestmark = pytest.mark.slow


def test_hung_endpoints_leave_a_healthy_one_alone(
    stuck_server: LiveServer, figures: dict[str, Any], full: bool
) -> None:
    with httpx.Client(base_url=stuck_server.url, timeout=60) as http:
        # Every slow endpoint hangs until all its slots are held and it sheds.
        for name in SLOW:
            statuses: list[int] = []
            while not statuses or statuses[-1] == 504:
                assert len(statuses) < 10, statuses
                statuses.append(http.post(f"/v1/endpoints/{name}/predict", json=row(HANG)).status_code)
            assert statuses[-1] == 503, statuses
        until(lambda: len(ENTERED) >= 3 * len(SLOW))

    slow_answers: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def keep_hanging(name: str) -> None:
        with httpx.Client(base_url=stuck_server.url, timeout=60) as client:
            while not stop.is_set():
                status = client.post(f"/v1/endpoints/{name}/predict", json=row(HANG)).status_code
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
