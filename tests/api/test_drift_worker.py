"""Big drift windows and monitor runs go to a child process (monitoring/worker.py): same answers, same
errors, and a monitor run is still stored and announced once, by the serving process."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

from driftgate.child import NICENESS
from driftgate.client import Client
from driftgate.core.points import MetricPoint
from tests.conftest import Artifacts, LiveServer, classification_data, make_server


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
    assert worker._child.started  # it did go to the child
    for report in (in_thread, in_child):
        report["window"].pop("computed_at")
    assert in_child == in_thread
    assert server.app.state.services.drift.latest["clf"]["window"]["rows"] == 300

    children = worker._child.processes()
    assert children and all(c.is_alive() for c in children)
    for child in children:  # the lowest CPU priority: serving wins the core
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == NICENESS
        if hasattr(os, "SCHED_IDLE"):
            assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE
    worker.close()  # what the app's shutdown does
    deadline = time.monotonic() + 60  # at nice 19 on a busy machine, exiting can take a while
    while any(c.is_alive() for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(c.is_alive() for c in children)


def _monitor(client: Client, **body: Any) -> dict[str, Any]:
    answer = client.http.post("/v1/endpoints/clf/monitor", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without the parts that differ between two runs: when they ran."""
    report = copy.deepcopy(report)
    report["run"].pop("ts")
    report["window"].pop("computed_at")
    return report


def test_a_big_monitor_run_computes_in_the_child_and_is_stored_and_alerted_once(
    deployed: Client, server: LiveServer
) -> None:
    services = server.app.state.services
    worker = services.drift_worker
    heard: list[list[MetricPoint]] = []

    async def listener(endpoint: str, points: list[MetricPoint]) -> None:
        heard.append(points)

    services.monitor.listeners.append(listener)
    rule = {"name": "retries", "endpoint": "clf", "metric": "event_rate", "op": ">", "threshold": 0.2}
    assert deployed.http.post("/v1/alert-rules", json={**rule, "cooldown_seconds": 0}).status_code == 201
    frame = classification_data(300, seed=5)
    ids: list[str] = []
    for start in range(0, 300, 100):
        ids += deployed.predict("clf", frame.iloc[start : start + 100][["x1", "x2", "colour"]])["ids"]
    deployed.feedback("clf", dict(zip(ids[:200], frame["y"][:200].tolist(), strict=True)))
    deployed.events("clf", [(pid, "user_retried") for pid in ids[::4]])

    # A time window is counted first: 300 rows stay in this process.
    in_thread = _monitor(deployed, since=0.0)
    assert not worker._child.started
    in_thread = _monitor(deployed, last=300)
    worker.in_process_rows = 0
    in_child = _monitor(deployed, last=300)
    assert worker._child.started  # it did go to the child
    assert in_child["run"]["replica"] == in_thread["run"]["replica"] == services.monitor.replica
    assert _comparable(in_child) == _comparable(in_thread)
    assert in_child["breakdown"]["event_rate"] == {"user_retried": 0.25}
    assert in_child["metrics"]["accuracy"] > 0.8 and in_child["metrics"]["request_count"] == 300

    # Stored once per run, whichever process computed it; listeners and alert rules ran on each.
    store = services.store
    assert [p.value for p in store.monitoring.series("clf", "request_count")] == [300.0, 300.0, 300.0]
    assert store.monitoring.latest_report("clf") == in_child
    assert len(heard) == 3 and {p.metric for p in heard[-1]} >= set(in_child["metrics"])
    alerts = store.alerts.history(rule="retries")
    assert [(a["value"], a["detail"]) for a in alerts] == [(0.25, {"event": "user_retried"})] * 3

    # Errors raised in the child come back with their type, status and field.
    answer = deployed.http.post("/v1/endpoints/clf/monitor", json={"last": 300, "baseline": "window"})
    assert answer.status_code == 400 and answer.json()["field"] == "baseline_since", answer.text
    assert len(heard) == 3  # a failed run stores and announces nothing


def test_periodic_runs_compute_in_the_child(tmp_path: Path, artifacts: Artifacts, db_url: str) -> None:
    srv = make_server(tmp_path, db=db_url, monitor_interval=0.5)
    try:
        srv.app.state.services.drift_worker.in_process_rows = 0
        with Client(srv.url) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1)
            store = srv.app.state.services.store
            deadline = time.monotonic() + 60  # the child's first start imports the stack at nice 19
            while time.monotonic() < deadline and store.monitoring.latest_report("clf") is None:
                client.predict(
                    "clf", classification_data(20, seed=int(time.monotonic() * 1000) % 10_000)[["x1", "x2", "colour"]]
                )
                time.sleep(0.3)
            report = store.monitoring.latest_report("clf")
            assert report is not None and report["run"]["trigger"] == "periodic"
            assert report["run"]["replica"] == srv.app.state.services.monitor.replica
            assert srv.app.state.services.drift_worker._child.started
    finally:
        srv.stop()
