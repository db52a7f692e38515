"""A model that raises, hangs, or segfaults (issue 19, item 8), in one real `driftgate serve`.

- raises (in-process endpoint): 500 with a JSON error naming the exception type; the next requests,
  to it and to a healthy endpoint, are answered.
- hangs (in-process endpoint, timeout_ms 300): 504 per hung call; once every call slot of the endpoint
  is held by a hung call it sheds at once, 503 with Retry-After; the healthy endpoint keeps answering.
- segfaults (`isolation: "process"`): 500 naming SIGSEGV, the worker process is gone and a fresh one
  answers the next request; the server process lives on.

The models and the server are tests/api/test_model_isolation.py's (`CRASHY`, `Server`), plus a class
that raises.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftgate.registry.formats import python_artifact
from driftgate.registry.registry import Registration, register
from driftgate.store import Store
from tests.api.test_model_isolation import CRASHY, Server, _alive
from tests.conftest import Artifacts
from tests.helpers import python_model, row, until

pytestmark = pytest.mark.slow

RAISING = '''

class Raising:
    """x1 == 999 raises (a bug in the model's own code); registration's sanity check scores fine."""

    def predict(self, frame):
        x1 = frame["x1"].to_numpy(dtype=float)
        if (x1 == 999).any():
            raise ValueError("model bug: cannot score this frame")
        return 2 * x1
'''
HEALTHY = {"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}


def test_a_model_that_raises_hangs_or_segfaults(
    tmp_path: Path, artifacts: Artifacts, servers: list[Any], figures: dict[str, Any]
) -> None:
    source = tmp_path / "faulty_model.py"
    source.write_text(textwrap.dedent(CRASHY) + textwrap.dedent(RAISING))
    data_dir = tmp_path / "data"
    store = Store.open(data_dir)
    register(store, python_model("crashy", python_artifact(f"{source}:Crashy"), artifacts))
    register(store, python_model("raising", python_artifact(f"{source}:Raising"), artifacts))
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"))
    store.endpoints.put("raises", {"model": "raising", "version": 1}, actor="test")
    store.endpoints.put("hangs", {"model": "crashy", "version": 1, "timeout_ms": 300}, actor="test")
    config = {"model": "crashy", "version": 1, "isolation": "process", "timeout_ms": 3000}
    store.endpoints.put("segfaults", config, actor="test")
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="test")
    store.close()
    server = Server(data_dir)
    servers.append(server)  # closed by the fixture (this Server has close() too)

    healthy_statuses: dict[int, int] = {}

    def healthy_answers() -> None:
        r = http.post("/v1/endpoints/clf/predict", json=HEALTHY)
        healthy_statuses[r.status_code] = healthy_statuses.get(r.status_code, 0) + 1
        assert r.status_code == 200, r.text

    with httpx.Client(base_url=server.url, timeout=60) as http:
        healthy_answers()

        # Raises: a JSON 500 naming the exception type, no traceback; the server goes on.
        raised = http.post("/v1/endpoints/raises/predict", json=row(999.0))
        assert raised.status_code == 500, raised.text
        message = raised.json()["error"]
        assert "ValueError" in message and "Traceback" not in message, message
        again = http.post("/v1/endpoints/raises/predict", json=row(1.0))
        assert again.status_code == 200 and again.json()["predictions"] == [2.0], again.text
        healthy_answers()
        assert server.proc.poll() is None

        # Hangs: 504 for each hung call; once every slot is held, shed at once with Retry-After.
        assert http.post("/v1/endpoints/hangs/predict", json=row(2.0)).status_code == 200
        hang_statuses: list[int] = []
        started = time.monotonic()
        while not hang_statuses or hang_statuses[-1] == 504:
            assert len(hang_statuses) < 10, hang_statuses
            hang_statuses.append(http.post("/v1/endpoints/hangs/predict", json=row(668.0)).status_code)
        to_shed = time.monotonic() - started
        assert hang_statuses[-1] == 503 and set(hang_statuses[:-1]) == {504}, hang_statuses
        shed_started = time.monotonic()
        shed = http.post("/v1/endpoints/hangs/predict", json=row(2.0))
        shed_seconds = time.monotonic() - shed_started
        assert shed.status_code == 503, shed.text
        retry_after = int(shed.headers["retry-after"])
        assert retry_after >= 1 and shed.json()["retry_after_s"] == retry_after
        healthy_answers()

        # Segfaults in a worker process: 500 naming the signal, the worker replaced, the server alive.
        def worker_pid() -> int | None:
            r = http.post("/v1/endpoints/segfaults/predict", json=row(1.0))
            assert r.status_code in (200, 503, 504), r.text  # 503/504 only while a worker starts
            return int(r.json()["predictions"][0]) if r.status_code == 200 else None

        first = until(worker_pid)
        assert first != server.proc.pid
        crashed = http.post("/v1/endpoints/segfaults/predict", json=row(666.0))
        assert crashed.status_code == 500, crashed.text
        crash_message = crashed.json()["error"]
        assert "crashed" in crash_message and "SIGSEGV" in crash_message, crash_message
        assert server.proc.poll() is None
        healthy_answers()
        until(lambda: not _alive(first))
        restart_started = time.monotonic()
        second = until(worker_pid)
        worker_restart = time.monotonic() - restart_started
        assert second != first and _alive(second)
        healthy_answers()
        assert server.proc.poll() is None

        metrics = http.get("/metrics").text
    crashes = [
        line
        for line in metrics.splitlines()
        if line.startswith("driftgate_model_worker_failures_total{") and 'endpoint="segfaults"' in line
    ]
    figures.update(
        {
            "raises": {"status": raised.status_code, "error": message},
            "hangs": {
                "statuses_until_shed": hang_statuses,
                "seconds_until_shed": round(to_shed, 2),
                "shed_answer_s": round(shed_seconds, 3),
                "retry_after_s": retry_after,
            },
            "segfaults": {
                "status": crashed.status_code,
                "error": crash_message,
                "fresh_worker_answered_after_s": round(worker_restart, 2),
                "worker_failures_metric": crashes,
            },
            "healthy_endpoint_statuses": healthy_statuses,
            "server_alive": server.proc.poll() is None,
        }
    )
