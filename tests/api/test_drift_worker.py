"""Big drift windows run in a child process (monitoring/worker.py) with the same answer and errors."""

from __future__ import annotations

import time

from driftgate.client import Client
from tests.conftest import LiveServer, classification_data


def test_a_big_window_runs_in_the_child_process_with_the_same_report(deployed: Client, server: LiveServer) -> None:
    worker = server.app.state.services.drift_worker
    frame = classification_data(300, seed=3)
    answer = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 200_000})  # worker path: too few rows
    assert answer.status_code == 400 and "at least" in answer.json()["error"], answer.text
    assert answer.json()["endpoint"] == "clf"  # the error's details cross the process boundary
    deployed.predict("clf", frame[["x1", "x2", "colour"]])

    in_thread = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 300}).json()
    worker.in_process_rows = 0
    in_child = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 300}).json()
    assert worker._pool is not None  # it did go to the child
    for report in (in_thread, in_child):
        report["window"].pop("computed_at")
    assert in_child == in_thread
    assert server.app.state.services.drift.latest["clf"]["window"]["rows"] == 300

    children = list(worker._pool._processes.values())
    assert children and all(c.is_alive() for c in children)
    worker.close()  # what the app's shutdown does
    deadline = time.monotonic() + 60  # at nice 19 on a busy machine, exiting can take a while
    while any(c.is_alive() for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(c.is_alive() for c in children)
